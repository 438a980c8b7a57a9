// taskpeer plays containerd against our C++ shim-side code, using containerd 1.6's own generated
// Go code (Debian's golang-github-containerd-containerd-dev):
//
//	taskpeer check-task <socket>    drive containerd.task.v2.Task like containerd does and check
//	                                every reply against the script below; exit 1 if any differs
//	taskpeer serve-events <socket>  serve containerd.services.events.ttrpc.v1.Events; print each
//	                                forwarded envelope as one line; prints "ready" once listening
//
// The C++ fake task server answers the fixed script in task_conformance_test.cpp; the two files
// describe the same exchange and must change together.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containerd/cgroups/stats/v1"
	eventtypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	runtimeoptions "github.com/containerd/containerd/pkg/runtimeoptions/v1"
	"github.com/containerd/containerd/runtime/v2/task"
	"github.com/containerd/ttrpc"
	ptypes "github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	shimPid = 4242
	taskPid = 4343
)

var exitedAt = time.Unix(1700000000, 5).UTC()

type checker struct{ failed bool }

func (c *checker) run(name string, check func() error) {
	if err := check(); err != nil {
		c.failed = true
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	fmt.Printf("ok   %s\n", name)
}

func want(what string, got, expected interface{}) error {
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", expected) {
		return fmt.Errorf("%s: got %#v, want %#v", what, got, expected)
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkTask(socket string) error {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	svc := task.NewTaskClient(client)
	md := ttrpc.MD{}
	md.Set("containerd-namespace-ttrpc", "default") // what containerd sends on every call
	ctx := ttrpc.WithMetadata(context.Background(), md)
	c := &checker{}

	c.run("Connect", func() error {
		resp, err := svc.Connect(ctx, &task.ConnectRequest{ID: "c1"})
		if err != nil {
			return err
		}
		return firstError(want("shim_pid", resp.ShimPid, uint32(shimPid)), want("task_pid", resp.TaskPid, uint32(taskPid)),
			want("version", resp.Version, "kata-conformance"))
	})

	c.run("Create", func() error {
		options, err := (&runtimeoptions.Options{ConfigPath: "/etc/kata-containers/configuration.toml"}).Marshal()
		if err != nil {
			return err
		}
		resp, err := svc.Create(ctx, &task.CreateTaskRequest{
			ID:       "c1",
			Bundle:   "/run/containerd/io.containerd.runtime.v2.task/default/c1",
			Rootfs:   []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/l", "upperdir=/u"}}},
			Terminal: true,
			Stdin:    "/run/containerd/fifo/1/c1-stdin",
			Stdout:   "/run/containerd/fifo/1/c1-stdout",
			Options:  &ptypes.Any{TypeUrl: "runtimeoptions.v1.Options", Value: options},
		})
		if err != nil {
			return err
		}
		return want("pid", resp.Pid, uint32(taskPid))
	})

	c.run("Start", func() error {
		resp, err := svc.Start(ctx, &task.StartRequest{ID: "c1"})
		if err != nil {
			return err
		}
		return want("pid", resp.Pid, uint32(taskPid))
	})

	c.run("State", func() error {
		resp, err := svc.State(ctx, &task.StateRequest{ID: "c1"})
		if err != nil {
			return err
		}
		return firstError(want("id", resp.ID, "c1"),
			want("bundle", resp.Bundle, "/run/containerd/io.containerd.runtime.v2.task/default/c1"),
			want("pid", resp.Pid, uint32(taskPid)), want("status", resp.Status, tasktypes.StatusRunning),
			want("stdin", resp.Stdin, "/run/containerd/fifo/1/c1-stdin"),
			want("stdout", resp.Stdout, "/run/containerd/fifo/1/c1-stdout"), want("stderr", resp.Stderr, ""),
			want("terminal", resp.Terminal, true), want("exec_id", resp.ExecID, ""))
	})

	c.run("State of an unknown task", func() error {
		_, err := svc.State(ctx, &task.StateRequest{ID: "nope"})
		if status.Code(err) != codes.NotFound {
			return fmt.Errorf("got %v, want NotFound", err)
		}
		return nil
	})

	c.run("Exec", func() error {
		_, err := svc.Exec(ctx, &task.ExecProcessRequest{
			ID: "c1", ExecID: "e1", Stdout: "/run/containerd/fifo/1/e1-stdout",
			Spec: &ptypes.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
				Value: []byte(`{"args":["ls","-l"],"cwd":"/"}`)},
		})
		return err
	})

	c.run("ResizePty", func() error {
		_, err := svc.ResizePty(ctx, &task.ResizePtyRequest{ID: "c1", ExecID: "e1", Width: 80, Height: 24})
		return err
	})

	c.run("CloseIO", func() error {
		_, err := svc.CloseIO(ctx, &task.CloseIORequest{ID: "c1", ExecID: "e1", Stdin: true})
		return err
	})

	c.run("Pids", func() error {
		resp, err := svc.Pids(ctx, &task.PidsRequest{ID: "c1"})
		if err != nil {
			return err
		}
		if len(resp.Processes) != 1 {
			return fmt.Errorf("%d processes, want 1", len(resp.Processes))
		}
		return want("pid", resp.Processes[0].Pid, uint32(taskPid))
	})

	c.run("Pause and Resume", func() error {
		if _, err := svc.Pause(ctx, &task.PauseRequest{ID: "c1"}); err != nil {
			return err
		}
		_, err := svc.Resume(ctx, &task.ResumeRequest{ID: "c1"})
		return err
	})

	c.run("Update", func() error {
		_, err := svc.Update(ctx, &task.UpdateTaskRequest{
			ID:          "c1",
			Resources:   &ptypes.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: []byte(`{"cpu":{"quota":50000}}`)},
			Annotations: map[string]string{"io.katacontainers.test": "yes"},
		})
		return err
	})

	c.run("Checkpoint is unimplemented", func() error {
		_, err := svc.Checkpoint(ctx, &task.CheckpointTaskRequest{ID: "c1", Path: "/tmp/cp"})
		if status.Code(err) != codes.Unimplemented {
			return fmt.Errorf("got %v, want Unimplemented", err)
		}
		return nil
	})

	c.run("Kill", func() error {
		_, err := svc.Kill(ctx, &task.KillRequest{ID: "c1", Signal: 9, All: true})
		return err
	})

	c.run("Wait", func() error {
		resp, err := svc.Wait(ctx, &task.WaitRequest{ID: "c1"})
		if err != nil {
			return err
		}
		return firstError(want("exit_status", resp.ExitStatus, uint32(137)), want("exited_at", resp.ExitedAt.UTC(), exitedAt))
	})

	c.run("Stats", func() error {
		resp, err := svc.Stats(ctx, &task.StatsRequest{ID: "c1"})
		if err != nil {
			return err
		}
		if resp.Stats == nil || resp.Stats.TypeUrl != "io.containerd.cgroups.v1.Metrics" {
			return fmt.Errorf("stats Any %v", resp.Stats)
		}
		var metrics v1.Metrics
		if err := metrics.Unmarshal(resp.Stats.Value); err != nil {
			return err
		}
		if metrics.Pids == nil || metrics.Memory == nil || metrics.Memory.Usage == nil || metrics.CPU == nil || metrics.CPU.Usage == nil {
			return fmt.Errorf("metrics missing sections: %+v", metrics)
		}
		return firstError(want("pids.current", metrics.Pids.Current, uint64(3)), want("pids.limit", metrics.Pids.Limit, uint64(100)),
			want("memory.usage.usage", metrics.Memory.Usage.Usage, uint64(1048576)),
			want("cpu.usage.total", metrics.CPU.Usage.Total, uint64(123456789)),
			want("cpu.usage.per_cpu", metrics.CPU.Usage.PerCPU, []uint64{100, 200}))
	})

	c.run("Delete", func() error {
		resp, err := svc.Delete(ctx, &task.DeleteRequest{ID: "c1"})
		if err != nil {
			return err
		}
		return firstError(want("pid", resp.Pid, uint32(taskPid)), want("exit_status", resp.ExitStatus, uint32(137)),
			want("exited_at", resp.ExitedAt.UTC(), exitedAt))
	})

	c.run("Shutdown", func() error {
		_, err := svc.Shutdown(ctx, &task.ShutdownRequest{ID: "c1", Now: true})
		return err
	})

	if c.failed {
		return errors.New("some checks failed")
	}
	return nil
}

// eventSink prints what a shim forwards, one line per event, in a form the C++ test compares.
type eventSink struct{}

func describeEvent(any *ptypes.Any) string {
	if any == nil {
		return "none"
	}
	switch any.TypeUrl {
	case "containerd.events.TaskCreate":
		var e eventtypes.TaskCreate
		if err := e.Unmarshal(any.Value); err != nil {
			return "undecodable: " + err.Error()
		}
		io := eventtypes.TaskIO{}
		if e.IO != nil {
			io = *e.IO
		}
		return fmt.Sprintf("container_id=%s bundle=%s rootfs=%d stdout=%s terminal=%t pid=%d",
			e.ContainerID, e.Bundle, len(e.Rootfs), io.Stdout, io.Terminal, e.Pid)
	case "containerd.events.TaskStart":
		var e eventtypes.TaskStart
		if err := e.Unmarshal(any.Value); err != nil {
			return "undecodable: " + err.Error()
		}
		return fmt.Sprintf("container_id=%s pid=%d", e.ContainerID, e.Pid)
	case "containerd.events.TaskExit":
		var e eventtypes.TaskExit
		if err := e.Unmarshal(any.Value); err != nil {
			return "undecodable: " + err.Error()
		}
		return fmt.Sprintf("container_id=%s id=%s pid=%d exit_status=%d exited_at=%s",
			e.ContainerID, e.ID, e.Pid, e.ExitStatus, e.ExitedAt.UTC().Format(time.RFC3339Nano))
	case "containerd.events.TaskDelete":
		var e eventtypes.TaskDelete
		if err := e.Unmarshal(any.Value); err != nil {
			return "undecodable: " + err.Error()
		}
		return fmt.Sprintf("container_id=%s id=%s pid=%d exit_status=%d exited_at=%s",
			e.ContainerID, e.ID, e.Pid, e.ExitStatus, e.ExitedAt.UTC().Format(time.RFC3339Nano))
	case "containerd.events.TaskOOM":
		var e eventtypes.TaskOOM
		if err := e.Unmarshal(any.Value); err != nil {
			return "undecodable: " + err.Error()
		}
		return fmt.Sprintf("container_id=%s", e.ContainerID)
	}
	return fmt.Sprintf("%d bytes", len(any.Value))
}

func (eventSink) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*ptypes.Empty, error) {
	env := req.Envelope
	if env == nil {
		return nil, status.Error(codes.InvalidArgument, "no envelope")
	}
	fmt.Printf("forward namespace=%s topic=%s timestamp=%s type=%s %s\n", env.Namespace, env.Topic,
		env.Timestamp.UTC().Format(time.RFC3339Nano), typeURL(env.Event), describeEvent(env.Event))
	return &ptypes.Empty{}, nil
}

func typeURL(any *ptypes.Any) string {
	if any == nil {
		return ""
	}
	return any.TypeUrl
}

func serveEvents(socket string) error {
	os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	eventsapi.RegisterEventsService(server, eventSink{})
	fmt.Println("ready")
	return server.Serve(context.Background(), listener)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: taskpeer check-task|serve-events <socket>")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "check-task":
		err = checkTask(os.Args[2])
	case "serve-events":
		err = serveEvents(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskpeer:", err)
		os.Exit(1)
	}
}
