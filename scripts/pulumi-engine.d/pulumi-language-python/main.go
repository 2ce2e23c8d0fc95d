// Command pulumi-language-python is mailbridge's Python language host for the
// Pulumi engine.
//
// The upstream host lives in a Go module that has no release tags, so the Go
// module proxy serves it only by commit hash, and the hash of a release commit
// cannot be learnt offline (see docs/pulumi-engine.md). This host is built
// from the same sdk/v3 and pkg/v3 release as the CLI and covers what a
// mailbridge deployment uses: running a program, Python policy packs and
// Python plugins, installing dependencies, and `pulumi about`.
//
// The engine starts it as `pulumi-language-python [flags] ENGINE_ADDRESS`
// and reads the gRPC port it listens on from the first line of its stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// execScript is the launcher that runs a program inside the Python SDK.
const execScript = "pulumi-language-python-exec"

// bailExitCode is the launcher's exit code after it has already shown the
// user an error; the engine then prints no further "program failed" text.
const bailExitCode = 32

func main() {
	engineAddress, err := engineAddressFromArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if engineAddress != "" {
		// Stop serving once the engine is gone, so no orphan stays behind.
		go func() {
			if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
				fmt.Fprintf(os.Stderr, "pulumi-language-python: health check: %v\n", err)
			}
		}()
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	host := &languageHost{engineAddress: engineAddress}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: serving gRPC: %v\n", err)
		os.Exit(1)
	}

	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
}

// engineAddressFromArgs returns the last positional argument. Flags the engine
// may add (-v=N, --logtostderr, --logflow, --tracing X, -root X) are skipped.
func engineAddressFromArgs(args []string) (string, error) {
	valued := map[string]bool{"tracing": true, "root": true, "v": true}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			positional = append(positional, arg)
			continue
		}
		name := strings.TrimLeft(arg, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if valued[name] && i+1 < len(args) {
			i++
		}
	}
	switch len(positional) {
	case 0:
		return "", nil
	case 1:
		return positional[0], nil
	default:
		return "", fmt.Errorf("expected one engine address, got %q", positional)
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
}

func (h *languageHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engineAddress = req.GetEngineAddress()
	h.mu.Unlock()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// GetRequiredPlugins and GetRequiredPackages report nothing: plugins are
// never downloaded here, and the engine still loads each provider that a
// program registers resources with.
func (h *languageHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *languageHost) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *languageHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// Run runs the program through the exec launcher in the project's Python.
func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, errors.New("run request carries no program info")
	}
	tc, err := resolveToolchain(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	launcher, err := findLauncher()
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args := []string{
		"-u", launcher,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engine(),
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run=" + strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
		"--organization", req.GetOrganization(),
		"--root_directory", info.GetRootDirectory(),
		filepath.Join(info.GetProgramDirectory(), entry),
	}
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	config, err := jsonObject(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := jsonArray(req.GetConfigSecretKeys())
	if err != nil {
		return nil, err
	}
	cmd.Env = append(baseEnv(cmd),
		"PULUMI_CONFIG="+config,
		"PULUMI_CONFIG_SECRET_KEYS="+secretKeys,
	)
	cmd.Dir = req.GetPwd()
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	code, err := runToExit(cmd)
	switch {
	case err != nil:
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	case code == 0:
		return &pulumirpc.RunResponse{}, nil
	case code == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	default:
		msg := fmt.Sprintf("Program exited with non-zero exit code: %d", code)
		return &pulumirpc.RunResponse{Error: msg}, nil
	}
}

// RunPlugin runs a plugin written in Python: a policy pack (kind "analyzer")
// through the SDK's `pulumi.policy` module, any other plugin as its folder's
// __main__.py.
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, srv pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := srv.Context()
	info := req.GetInfo()
	if info == nil {
		return errors.New("plugin request carries no program info")
	}
	tc, err := resolveToolchain(info)
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return err
	}

	programDir := info.GetProgramDirectory()
	var args []string
	if req.GetKind() == "analyzer" {
		args = append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
		args = append(args, programDir)
	} else {
		entry := info.GetEntryPoint()
		if entry == "" {
			entry = "."
		}
		args = append([]string{"-u", filepath.Join(programDir, entry)}, req.GetArgs()...)
	}
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	if env := req.GetEnv(); len(env) > 0 {
		cmd.Env = withVirtualEnv(ctx, tc, env)
	}
	cmd.Dir = req.GetPwd()

	out := &streamWriter{send: func(b []byte) error {
		return srv.Send(&pulumirpc.RunPluginResponse{
			Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b},
		})
	}}
	errOut := &streamWriter{mu: &out.sendMu, send: func(b []byte) error {
		return srv.Send(&pulumirpc.RunPluginResponse{
			Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b},
		})
	}}
	cmd.Stdout = out
	cmd.Stderr = errOut

	code, err := runToExit(cmd)
	if err != nil {
		return err
	}
	out.sendMu.Lock()
	defer out.sendMu.Unlock()
	return srv.Send(&pulumirpc.RunPluginResponse{
		Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)},
	})
}

// InstallDependencies creates the virtualenv if needed and installs the
// project's requirements into it (from the package registry, or from the
// local wheel folder pip is configured with).
func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, srv pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	ctx := srv.Context()
	info := req.GetInfo()
	if info == nil {
		return errors.New("install request carries no program info")
	}
	tc, err := resolveToolchain(info)
	if err != nil {
		return err
	}

	out := &streamWriter{send: func(b []byte) error {
		return srv.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	errOut := &streamWriter{mu: &out.sendMu, send: func(b []byte) error {
		return srv.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	dir := info.GetProgramDirectory()
	useTools := req.GetUseLanguageVersionTools()
	if err := tc.EnsureVenv(ctx, dir, useTools, true, out, errOut); err != nil {
		return err
	}
	if err := tc.InstallDependencies(ctx, dir, useTools, true, out, errOut); err != nil {
		return err
	}
	if req.GetIsPlugin() {
		return tc.InstallPackage(ctx, dir, useTools, true, out, errOut)
	}
	return nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, errors.New("about request carries no program info")
	}
	tc, err := resolveToolchain(info)
	if err != nil {
		return nil, err
	}
	about, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: about.PythonExecutable,
		Version:    about.PythonVersion.String(),
	}, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, errors.New("dependencies request carries no program info")
	}
	tc, err := resolveToolchain(info)
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(packages))
	for _, p := range packages {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

// resolveToolchain reads the `runtime.options` of Pulumi.yaml (or
// PulumiPolicy.yaml): virtualenv and toolchain. The typechecker option is
// accepted and ignored.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts := info.GetOptions().AsMap()
	options := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
	}
	if v, ok := opts["virtualenv"].(string); ok {
		options.Virtualenv = v
	}
	name, _ := opts["toolchain"].(string)
	switch name {
	case "", "auto":
		options.Toolchain = toolchain.Auto
	case "pip":
		options.Toolchain = toolchain.Pip
	case "poetry":
		options.Toolchain = toolchain.Poetry
	case "uv":
		options.Toolchain = toolchain.Uv
	default:
		return nil, fmt.Errorf("unknown Python toolchain %q in runtime options (pip, uv, poetry)", name)
	}
	return toolchain.ResolveToolchain(options)
}

// findLauncher looks for the exec launcher next to this binary (unresolved
// first, so a symlink in .tools/bin finds its neighbours), then on PATH.
func findLauncher() (string, error) {
	var dirs []string
	if filepath.IsAbs(os.Args[0]) {
		dirs = append(dirs, filepath.Dir(os.Args[0]))
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, dir := range dirs {
		candidate := filepath.Join(dir, execScript)
		if st, err := os.Stat(candidate); err == nil && !st.IsDir() {
			return candidate, nil
		}
	}
	if path, err := exec.LookPath(execScript); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("%s not found next to %s nor on PATH; run scripts/pulumi-engine", execScript, os.Args[0])
}

// jsonObject and jsonArray encode config for the launcher: PULUMI_CONFIG is
// an object of "project:key" to value, PULUMI_CONFIG_SECRET_KEYS a list.
func jsonObject(m map[string]string) (string, error) {
	if m == nil {
		m = map[string]string{}
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func jsonArray(items []string) (string, error) {
	if items == nil {
		items = []string{}
	}
	b, err := json.Marshal(items)
	return string(b), err
}

// baseEnv is the environment a toolchain command was prepared with.
func baseEnv(cmd *exec.Cmd) []string {
	if cmd.Env != nil {
		return cmd.Env
	}
	return os.Environ()
}

// withVirtualEnv activates the toolchain's virtualenv, if any, in env.
func withVirtualEnv(ctx context.Context, tc toolchain.Toolchain, env []string) []string {
	venv, err := tc.VirtualEnvPath(ctx)
	if err != nil || venv == "" {
		return env
	}
	return toolchain.ActivateVirtualEnv(env, venv)
}

// runToExit runs cmd and returns its exit code; err is set only when it could
// not be started or was killed by a signal.
func runToExit(cmd *exec.Cmd) (int, error) {
	err := cmd.Run()
	if err == nil {
		return 0, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() >= 0 {
		return exitErr.ExitCode(), nil
	}
	return -1, fmt.Errorf("running %s: %w", cmd.Path, err)
}

// streamWriter forwards a child's output as gRPC stream messages. Stdout and
// stderr share one mutex, since a gRPC stream takes one Send at a time.
type streamWriter struct {
	sendMu sync.Mutex
	mu     *sync.Mutex
	send   func([]byte) error
}

func (w *streamWriter) Write(p []byte) (int, error) {
	lock := w.mu
	if lock == nil {
		lock = &w.sendMu
	}
	lock.Lock()
	defer lock.Unlock()
	buf := make([]byte, len(p))
	copy(buf, p)
	if err := w.send(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*streamWriter)(nil)
