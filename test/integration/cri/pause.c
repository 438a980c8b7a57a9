// The pod's infrastructure process: holds the sandbox's namespaces and waits to be told to stop.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void stop(int signal_number) {
  (void)signal_number;
  _exit(0);
}

int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  for (;;) pause();
}
