// echopeer is the reference end of the ttRPC conformance tests: containerd's own Go ttRPC
// (Debian's golang-github-containerd-ttrpc-dev) serving or calling the kata.test.Echo service.
//
//	echopeer serve <socket>   serve kata.test.Echo; prints "ready" once listening
//	echopeer check <socket>   run the client checks against a server; exit 1 if any fails
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"katatest/echopb"
)

// Largest response body that still fits ttRPC's 4 MiB message limit once wrapped in
// LargeResponse and ttrpc.Response.
const nearLimit = 4<<20 - 1024

func pattern(size uint64) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte((uint64(i)*7 + 3) % 251)
	}
	return data
}

type echoServer struct{}

func (echoServer) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	resp := &echopb.EchoResponse{Payload: req.Payload}
	if md, ok := ttrpc.GetMetadata(ctx); ok {
		for key, values := range md {
			for _, value := range values {
				resp.Metadata = append(resp.Metadata, &echopb.KeyValue{Key: key, Value: value})
			}
		}
	}
	sort.Slice(resp.Metadata, func(i, j int) bool {
		a, b := resp.Metadata[i], resp.Metadata[j]
		return a.Key < b.Key || (a.Key == b.Key && a.Value < b.Value)
	})
	if deadline, ok := ctx.Deadline(); ok {
		resp.DeadlineRemainingNanos = time.Until(deadline).Nanoseconds()
		if resp.DeadlineRemainingNanos <= 0 {
			resp.DeadlineRemainingNanos = 1
		}
	}
	return resp, nil
}

func (echoServer) Fail(ctx context.Context, req *echopb.FailRequest) (*echopb.FailResponse, error) {
	return nil, status.Error(codes.Code(req.Code), req.Message)
}

func (echoServer) Sleep(ctx context.Context, req *echopb.SleepRequest) (*echopb.SleepResponse, error) {
	timer := time.NewTimer(time.Duration(req.Millis) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
		return &echopb.SleepResponse{Slept: true}, nil
	case <-ctx.Done():
		return nil, ctx.Err() // ttrpc maps context.DeadlineExceeded to DeadlineExceeded
	}
}

func (echoServer) Large(ctx context.Context, req *echopb.LargeRequest) (*echopb.LargeResponse, error) {
	return &echopb.LargeResponse{Data: pattern(req.Length)}, nil
}

func serve(socket string) error {
	os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	echopb.RegisterEchoService(server, echoServer{})
	fmt.Println("ready")
	return server.Serve(context.Background(), listener)
}

// checker runs named checks and remembers whether any failed.
type checker struct {
	client *ttrpc.Client
	echo   echopb.EchoService
	failed bool
}

func (c *checker) run(name string, check func() error) {
	if err := check(); err != nil {
		c.failed = true
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	fmt.Printf("ok   %s\n", name)
}

func expectStatus(err error, code codes.Code, message string) error {
	if err == nil {
		return fmt.Errorf("succeeded, want %v", code)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("error %q is not a status", err)
	}
	if st.Code() != code || (message != "" && st.Message() != message) {
		return fmt.Errorf("got %v %q, want %v %q", st.Code(), st.Message(), code, message)
	}
	return nil
}

func check(socket string) error {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	c := &checker{client: client, echo: echopb.NewEchoClient(client)}
	background := context.Background()

	c.run("unary", func() error {
		resp, err := c.echo.Echo(background, &echopb.EchoRequest{Payload: []byte("hello from go")})
		if err != nil {
			return err
		}
		if string(resp.Payload) != "hello from go" {
			return fmt.Errorf("payload %q", resp.Payload)
		}
		if len(resp.Metadata) != 0 || resp.DeadlineRemainingNanos != 0 {
			return fmt.Errorf("server saw metadata %v / deadline %d on a plain call", resp.Metadata, resp.DeadlineRemainingNanos)
		}
		return nil
	})

	c.run("empty payload", func() error {
		resp, err := c.echo.Echo(background, &echopb.EchoRequest{})
		if err != nil {
			return err
		}
		if len(resp.Payload) != 0 {
			return fmt.Errorf("payload %q", resp.Payload)
		}
		return nil
	})

	c.run("metadata", func() error {
		md := ttrpc.MD{}
		md.Set("containerd-namespace-ttrpc", "k8s.io")
		md.Append("multi", "a", "b")
		resp, err := c.echo.Echo(ttrpc.WithMetadata(background, md), &echopb.EchoRequest{})
		if err != nil {
			return err
		}
		want := []string{"containerd-namespace-ttrpc=k8s.io", "multi=a", "multi=b"}
		var got []string
		for _, kv := range resp.Metadata {
			got = append(got, kv.Key+"="+kv.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("server saw %v, want %v", got, want)
		}
		return nil
	})

	c.run("deadline propagated", func() error {
		ctx, cancel := context.WithTimeout(background, 30*time.Second)
		defer cancel()
		resp, err := c.echo.Echo(ctx, &echopb.EchoRequest{})
		if err != nil {
			return err
		}
		if resp.DeadlineRemainingNanos <= 0 || resp.DeadlineRemainingNanos > int64(30*time.Second) {
			return fmt.Errorf("server saw %d ns left of a 30 s deadline", resp.DeadlineRemainingNanos)
		}
		return nil
	})

	c.run("status codes", func() error {
		for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
			message := fmt.Sprintf("failing with %d", code)
			_, err := c.echo.Fail(background, &echopb.FailRequest{Code: uint32(code), Message: message})
			if err := expectStatus(err, code, message); err != nil {
				return fmt.Errorf("code %d: %w", code, err)
			}
		}
		return nil
	})

	c.run("unknown method", func() error {
		var resp echopb.EchoResponse
		err := client.Call(background, "kata.test.Echo", "Nope", &echopb.EchoRequest{}, &resp)
		return expectStatus(err, codes.Unimplemented, "method Nope")
	})

	c.run("unknown service", func() error {
		var resp echopb.EchoResponse
		err := client.Call(background, "kata.test.Nope", "Echo", &echopb.EchoRequest{}, &resp)
		return expectStatus(err, codes.Unimplemented, "service kata.test.Nope")
	})

	c.run("deadline exceeded", func() error {
		ctx, cancel := context.WithTimeout(background, 200*time.Millisecond)
		defer cancel()
		_, err := c.echo.Sleep(ctx, &echopb.SleepRequest{Millis: 60000})
		if errors.Is(err, context.DeadlineExceeded) {
			return nil // the Go client gave up on its own clock first
		}
		return expectStatus(err, codes.DeadlineExceeded, "")
	})

	c.run("usable after deadline", func() error {
		resp, err := c.echo.Sleep(background, &echopb.SleepRequest{Millis: 1})
		if err != nil {
			return err
		}
		if !resp.Slept {
			return errors.New("sleep did not complete")
		}
		return nil
	})

	c.run("100 concurrent calls", func() error {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				payload := []byte(fmt.Sprintf("call-%03d-%s", i, bytes.Repeat([]byte{'x'}, i*100)))
				resp, err := c.echo.Echo(background, &echopb.EchoRequest{Payload: payload})
				if err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
				if !bytes.Equal(resp.Payload, payload) {
					errs <- fmt.Errorf("call %d got another call's payload", i)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		return <-errs
	})

	c.run("request near 4 MiB", func() error {
		payload := pattern(nearLimit)
		resp, err := c.echo.Echo(background, &echopb.EchoRequest{Payload: payload})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Payload, payload) {
			return fmt.Errorf("payload of %d bytes came back as %d bytes", len(payload), len(resp.Payload))
		}
		return nil
	})

	c.run("response near 4 MiB", func() error {
		resp, err := c.echo.Large(background, &echopb.LargeRequest{Length: nearLimit})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Data, pattern(nearLimit)) {
			return fmt.Errorf("got %d bytes, want the %d-byte pattern", len(resp.Data), nearLimit)
		}
		return nil
	})

	c.run("response over 4 MiB", func() error {
		_, err := c.echo.Large(background, &echopb.LargeRequest{Length: 4<<20 + 1})
		return expectStatus(err, codes.ResourceExhausted, "")
	})

	c.run("usable after oversized response", func() error {
		resp, err := c.echo.Echo(background, &echopb.EchoRequest{Payload: []byte("still here")})
		if err != nil {
			return err
		}
		if string(resp.Payload) != "still here" {
			return fmt.Errorf("payload %q", resp.Payload)
		}
		return nil
	})

	if c.failed {
		return errors.New("some checks failed")
	}
	return nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: echopeer serve|check <socket>")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "check":
		err = check(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echopeer:", err)
		os.Exit(1)
	}
}
