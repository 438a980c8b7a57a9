// A shim binary built from kata::shim::run<FakeFactory>: the real binary protocol (start, serve,
// delete, -version) over the in-memory runtime. With KATA_FAKE_SHIM_RECORD set, it appends one
// line per runtime built ("runtime <sandbox> config=<config_path>") and per cleanup
// ("cleanup <sandbox> <bundle> <namespace>") to that file, so a test can see what happened inside.
#include <cstdlib>
#include <fstream>
#include <string>

#include "kata/shim/shim.hpp"
#include "mocks/fake_runtime.hpp"

int main(int argc, char** argv) {
  using kata::testing::FakeFactory;
  if (const char* record = std::getenv("KATA_FAKE_SHIM_RECORD"); record != nullptr) {
    const std::string path = record;
    auto append = [path](const std::string& line) { std::ofstream(path, std::ios::app) << line << '\n'; };
    FakeFactory::control().configure = [append](kata::testing::FakeRuntime& runtime) {
      append("runtime " + runtime.setup().sandbox_id + " config=" + runtime.setup().config_path);
    };
    FakeFactory::control().on_cleanup = [append](const kata::shim::DeleteContext& context) {
      append("cleanup " + context.sandbox_id + " " + context.bundle.string() + " " + context.namespace_name);
    };
  }
  return kata::shim::run<FakeFactory>(argc, argv);
}
