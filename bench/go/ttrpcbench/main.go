// Go side of bench/ttrpc/run.sh: containerd/ttrpc (Debian's 1.1.1) echo server and client,
// with the same command line and output line as ttrpc_bench:
//
//	ttrpcbench server <socket>
//	ttrpcbench client <socket> <bytes> <callers> <calls>   -> "<p50 µs> <p99 µs> <calls/s> <RSS kB> <PSS kB>"
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
)

func memory() (rss, pss int64) {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return
}

func server(path string) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		panic(err)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		panic(err)
	}
	s.Register("bench.Echo", map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.BytesValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &req, nil
		},
	})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		s.Close()
	}()
	s.Serve(context.Background(), l)
}

func client(path string, size, callers, calls int) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		panic(err)
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	req := &types.BytesValue{Value: make([]byte, size)}
	call := func() {
		var resp types.BytesValue
		if err := c.Call(context.Background(), "bench.Echo", "Echo", req, &resp); err != nil {
			panic(err)
		}
		if len(resp.Value) != size {
			panic("short echo")
		}
	}
	warmup := calls / 10
	if warmup < 10 {
		warmup = 10
	}
	for i := 0; i < warmup; i++ {
		call()
	}
	latencies := make([]float64, 0, calls)
	var mu sync.Mutex
	var wg sync.WaitGroup
	remaining := calls
	start := time.Now()
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if remaining == 0 {
					mu.Unlock()
					return
				}
				remaining--
				mu.Unlock()
				t0 := time.Now()
				call()
				d := float64(time.Since(t0).Nanoseconds()) / 1000
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	sort.Float64s(latencies)
	at := func(q float64) float64 { return latencies[int(q*float64(len(latencies)-1))] }
	rss, pss := memory()
	fmt.Printf("%.1f %.1f %.0f %d %d\n", at(0.50), at(0.99), float64(len(latencies))/seconds, rss, pss)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "server" {
		server(os.Args[2])
		return
	}
	if len(os.Args) == 6 && os.Args[1] == "client" {
		size, _ := strconv.Atoi(os.Args[3])
		callers, _ := strconv.Atoi(os.Args[4])
		calls, _ := strconv.Atoi(os.Args[5])
		client(os.Args[2], size, callers, calls)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: ttrpcbench server <socket> | client <socket> <bytes> <callers> <calls>")
	os.Exit(2)
}
