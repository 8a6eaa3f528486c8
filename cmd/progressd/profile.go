package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of this process to the file named
// by the environment variable env, if it is set, until the returned stop
// is called. It is how server and load tool time is looked into.
func startCPUProfile(env string) (stop func(), err error) {
	f, err := createFromEnv(env)
	if f == nil {
		return func() {}, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startMemProfile writes a heap profile of this process to the file named
// by the environment variable env, if it is set, when the returned stop is
// called: its alloc_space and alloc_objects views say what the run
// allocated, which is what the garbage collector's share of a profile
// comes from.
func startMemProfile(env string) (stop func(), err error) {
	f, err := createFromEnv(env)
	if f == nil {
		return func() {}, err
	}
	return func() {
		runtime.GC() // the profile counts up to the last collection
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", env, err)
		}
		f.Close()
	}, nil
}

// createFromEnv creates the file named by the environment variable env;
// nil and no error when env is not set.
func createFromEnv(env string) (*os.File, error) {
	path := os.Getenv(env)
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return f, nil
}
