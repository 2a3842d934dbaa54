package deploy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
)

// The validators here work offline: the Kubernetes API schema is the one client-go
// ships (the structured schema server-side apply validates against) plus strict
// decoding into the API's Go types; the compose file is checked by compose-go
// against the compose-spec JSON schema it embeds; the Dockerfile by BuildKit's own
// parser and linter; the NATS configs by nats-server's config loader.

// allRoles are the roles natter runs; every one needs a Deployment and a compose
// service.
func allRoles(t *testing.T) []string {
	t.Helper()
	roles, err := app.Targets([]string{app.All})
	require.NoError(t, err)
	return roles
}

// ---- Kubernetes ----

// k8sDoc is one object of a manifest file.
type k8sDoc struct {
	file string
	obj  *unstructured.Unstructured
}

func (d k8sDoc) String() string { return d.file + ": " + d.obj.GetKind() + "/" + d.obj.GetName() }

func readManifests(t *testing.T) []k8sDoc {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var docs []k8sDoc
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if m == nil {
				continue
			}
			docs = append(docs, k8sDoc{file: f, obj: &unstructured.Unstructured{Object: m}})
		}
	}
	return docs
}

// k8sChecker validates manifests against the Kubernetes API schema and checks
// that they fit together and fit natter.
type k8sChecker struct {
	tc    managedfields.TypeConverter
	codec runtime.Decoder
	roles []string
}

func newK8sChecker(t *testing.T) *k8sChecker {
	return &k8sChecker{
		tc:    applyconfigurations.NewTypeConverter(scheme.Scheme),
		codec: serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer(),
		roles: allRoles(t),
	}
}

// check returns every problem found in docs.
func (k *k8sChecker) check(docs []k8sDoc) []error {
	var errs []error
	fail := func(d k8sDoc, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", d, fmt.Sprintf(format, args...)))
	}
	var (
		deploys  = map[string]*appsv1.Deployment{}
		services []*corev1.Service
		hpas     []*autoscalingv2.HorizontalPodAutoscaler
		pdbs     []*policyv1.PodDisruptionBudget
		cms      = map[string]*corev1.ConfigMap{}
		jobs     []*batchv1.Job
		netpols  []*networkingv1.NetworkPolicy
		docOf    = map[runtime.Object]k8sDoc{}
	)
	for _, d := range docs {
		// 1. The schema: unknown fields, wrong types, missing kinds.
		if _, err := k.tc.ObjectToTyped(d.obj); err != nil {
			fail(d, "schema: %v", err)
			continue
		}
		// 2. Strict decoding into the API types (quantities, int-or-string, ...).
		js, err := d.obj.MarshalJSON()
		if err != nil {
			fail(d, "%v", err)
			continue
		}
		obj, _, err := k.codec.Decode(js, nil, nil)
		if err != nil {
			fail(d, "decode: %v", err)
			continue
		}
		docOf[obj] = d
		switch o := obj.(type) {
		case *appsv1.Deployment:
			deploys[o.Name] = o
		case *corev1.Service:
			services = append(services, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *corev1.ConfigMap:
			cms[o.Name] = o
		case *batchv1.Job:
			jobs = append(jobs, o)
		case *networkingv1.NetworkPolicy:
			netpols = append(netpols, o)
		default:
			fail(d, "unexpected kind %T", obj)
		}
	}

	// 3. They fit together, and fit natter.
	selects := func(sel *metav1.LabelSelector, dep *appsv1.Deployment) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		return err == nil && !s.Empty() && s.Matches(labels.Set(dep.Spec.Template.Labels))
	}
	byRole := map[string]*appsv1.Deployment{}
	for _, dep := range deploys {
		d := docOf[dep]
		if !selects(dep.Spec.Selector, dep) {
			fail(d, "selector does not match the pod template's labels")
		}
		if len(dep.Spec.Template.Spec.Containers) != 1 {
			fail(d, "want one container")
			continue
		}
		c := dep.Spec.Template.Spec.Containers[0]
		i := slices.Index(c.Args, "--roles")
		if c.Args[0] != "serve" || i < 0 || i+1 >= len(c.Args) {
			fail(d, "args %v: want serve --roles <role>", c.Args)
		} else if roles, err := app.Targets(strings.Split(c.Args[i+1], ",")); err != nil {
			fail(d, "args: %v", err)
		} else {
			for _, r := range roles {
				byRole[r] = dep
			}
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			switch {
			case p == nil || p.HTTPGet == nil:
				fail(d, "no %s HTTP probe", name)
			case !ports[p.HTTPGet.Port.String()]:
				fail(d, "%s probe on port %q, which the container does not declare", name, p.HTTPGet.Port.String())
			case name == "readiness" && p.HTTPGet.Path != "/readyz", name == "liveness" && p.HTTPGet.Path != "/healthz":
				fail(d, "%s probe path %s", name, p.HTTPGet.Path)
			}
		}
		if !ports["admin"] {
			fail(d, "no admin port (metrics, probes)")
		}
		vols := map[string]corev1.Volume{}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			vols[v.Name] = v
			if v.ConfigMap != nil && cms[v.ConfigMap.Name] == nil {
				fail(d, "volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef == nil {
				continue
			}
			cm := cms[ef.ConfigMapRef.Name]
			if cm == nil {
				fail(d, "envFrom: no ConfigMap %s", ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				if err := checkNatterEnv(k, v); err != nil {
					fail(d, "envFrom ConfigMap %s: %v", cm.Name, err)
				}
			}
		}
		if err := checkK8sNATSCreds(c); err != nil {
			fail(d, "%v", err)
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				if err := checkNatterEnv(e.Name, e.Value); err != nil {
					fail(d, "env: %v", err)
				}
				if isSecretEnv(e.Name) && e.Value != "" {
					fail(d, "env %s: a secret in plain text in the manifest: take it from a Secret (valueFrom) or a *-file", e.Name)
				}
			}
		}
		if err := checkNoSecretFlags(c.Args); err != nil {
			fail(d, "args: %v", err)
		}
		for _, m := range c.VolumeMounts {
			if _, ok := vols[m.Name]; !ok {
				fail(d, "volume mount %s has no volume", m.Name)
			}
		}
		psc, sc := dep.Spec.Template.Spec.SecurityContext, c.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail(d, "must run as non-root with a read-only root filesystem")
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			fail(d, "no CPU and memory requests (the HPA and the scheduler need them)")
		}
	}
	migrates := 0
	for _, j := range jobs {
		d := docOf[j]
		spec := j.Spec.Template.Spec
		if len(spec.Containers) != 1 || len(spec.Containers[0].Args) == 0 || spec.Containers[0].Args[0] != "migrate" {
			fail(d, "want one container running natter migrate")
			continue
		}
		migrates++
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && cms[v.ConfigMap.Name] == nil {
				fail(d, "volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
			}
		}
	}
	if migrates == 0 {
		errs = append(errs, errors.New("no Job running natter migrate"))
	}
	for _, r := range k.roles {
		if byRole[r] == nil {
			errs = append(errs, fmt.Errorf("no Deployment runs role %s", r))
		}
	}
	for _, s := range services {
		d := docOf[s]
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			if s.Spec.ExternalName == "" {
				fail(d, "ExternalName service without externalName")
			}
			continue
		}
		matched := 0
		for _, dep := range deploys {
			if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, dep) {
				continue
			}
			matched++
			for _, p := range s.Spec.Ports {
				if p.TargetPort.String() != "" && !slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].Ports,
					func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
					fail(d, "targetPort %s is not a port of %s", p.TargetPort.String(), dep.Name)
				}
			}
		}
		if matched == 0 {
			fail(d, "selects no Deployment's pods")
		}
	}
	hpaFor := map[string]bool{}
	for _, h := range hpas {
		d := docOf[h]
		dep := deploys[h.Spec.ScaleTargetRef.Name]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || dep == nil {
			fail(d, "scales %s/%s, which is not one of the Deployments", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
			continue
		}
		hpaFor[dep.Name] = true
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			fail(d, "minReplicas must be 2..maxReplicas")
		}
	}
	if gw := byRole[app.RoleGateway]; gw != nil && !hpaFor[gw.Name] {
		errs = append(errs, errors.New("no HorizontalPodAutoscaler for the gateways"))
	}
	for _, p := range pdbs {
		d := docOf[p]
		matched := false
		for _, dep := range deploys {
			matched = matched || selects(p.Spec.Selector, dep)
		}
		if !matched {
			fail(d, "selects no Deployment's pods")
		}
	}
	if len(pdbs) == 0 {
		errs = append(errs, errors.New("no PodDisruptionBudget"))
	}
	// The ConfigMap's natter.yaml is a configuration natter accepts, and a safe one.
	if cm := cms["natter-config"]; cm == nil {
		errs = append(errs, errors.New("no ConfigMap natter-config"))
	} else if cfg, err := loadNatterConfig(cm.Data["natter.yaml"]); err != nil {
		errs = append(errs, fmt.Errorf("ConfigMap natter-config: natter.yaml: %w", err))
	} else if err := checkSafeConfig(cfg); err != nil {
		errs = append(errs, fmt.Errorf("ConfigMap natter-config: natter.yaml: %w", err))
	}
	// The admin port is never public: every pod is under a NetworkPolicy, and no
	// rule lets the world reach its admin port; the gateways' http port is open.
	for _, dep := range deploys {
		d := docOf[dep]
		var covering []*networkingv1.NetworkPolicy
		for _, np := range netpols {
			if selects(&np.Spec.PodSelector, dep) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				covering = append(covering, np)
			}
		}
		if len(covering) == 0 {
			fail(d, "no NetworkPolicy restricts ingress to its pods (the admin port would be open to every pod)")
			continue
		}
		c := dep.Spec.Template.Spec.Containers[0]
		httpOpen := false
		for _, np := range covering {
			for _, rule := range np.Spec.Ingress {
				if allowsPort(rule.Ports, c, "admin") {
					if reason := publicPeers(rule.From); reason != "" {
						fail(docOf[np], "ingress rule lets %s reach the admin port of %s", reason, dep.Name)
					}
				}
				if allowsPort(rule.Ports, c, "http") && publicPeers(rule.From) != "" {
					httpOpen = true
				}
			}
		}
		if byRole[app.RoleGateway] == dep && !httpOpen {
			fail(d, "no NetworkPolicy lets clients reach the gateway's http port")
		}
	}
	return errs
}

// allowsPort reports whether a rule's ports admit the container port named name
// (no ports: every port).
func allowsPort(ports []networkingv1.NetworkPolicyPort, c corev1.Container, name string) bool {
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name })
	if i < 0 {
		return false
	}
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Port == nil || p.Port.String() == name || (p.Port.IntValue() != 0 && p.Port.IntValue() == int(c.Ports[i].ContainerPort)) ||
			(p.EndPort != nil && p.Port.IntValue() <= int(c.Ports[i].ContainerPort) && int(c.Ports[i].ContainerPort) <= int(*p.EndPort)) {
			return true
		}
	}
	return false
}

// publicPeers says why peers admit anyone ("" when they do not): no peers at all,
// a peer that selects nothing in particular, or an IP block of the whole internet.
func publicPeers(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "any source (no from)"
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0" {
				return "the whole internet (ipBlock " + p.IPBlock.CIDR + ")"
			}
			continue
		}
		if p.PodSelector == nil || (len(p.PodSelector.MatchLabels) == 0 && len(p.PodSelector.MatchExpressions) == 0) {
			return "every pod (a peer without a pod selector)"
		}
	}
	return ""
}

// checkSafeConfig refuses a configuration that opens a door: dev auth (anyone
// mints tokens) or pprof on the admin port.
func checkSafeConfig(cfg *app.Config) error {
	var errs []error
	if cfg.Auth.DevMode() || cfg.Auth.Dev {
		errs = append(errs, errors.New("auth.dev must be false (a dev server issues tokens for anyone)"))
	}
	if cfg.Auth.InsecureDevOnPublicAddress {
		errs = append(errs, errors.New("auth.insecure-dev-on-public-address must be off"))
	}
	if cfg.Admin.Pprof {
		errs = append(errs, errors.New("admin.pprof must be off in a deployment (profiles show memory contents)"))
	}
	return errors.Join(errs...)
}

// secretFlags are the names of natter's secret settings (config.SecretVar).
func secretFlags() map[string]bool {
	out := map[string]bool{}
	for _, register := range []func(*flag.FlagSet){
		func(fs *flag.FlagSet) { (&app.Config{}).RegisterFlags(fs) },
		func(fs *flag.FlagSet) { (&store.CassandraConfig{}).RegisterFlags(fs) },
	} {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		register(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if config.IsSecret(f) {
				out[f.Name] = true
			}
		})
	}
	return out
}

// isSecretEnv reports whether an environment variable sets a secret setting.
func isSecretEnv(name string) bool {
	for f := range secretFlags() {
		if config.EnvName(f) == name {
			return true
		}
	}
	return false
}

// checkNoSecretFlags refuses a command line carrying a secret: natter would refuse
// to start, and the secret would sit in the pod spec and in ps.
func checkNoSecretFlags(args []string) error {
	secrets := secretFlags()
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && secrets[name] {
			return fmt.Errorf("secret flag %s on the command line: use its *-file form or the environment", a)
		}
	}
	return nil
}

// roleOf returns the single role a serve command line selects ("" otherwise).
func roleOf(args []string) string {
	i := slices.Index(args, "--roles")
	if len(args) == 0 || args[0] != "serve" || i < 0 || i+1 >= len(args) || strings.Contains(args[i+1], ",") {
		return ""
	}
	return args[i+1]
}

// checkK8sNATSCreds checks that a role's container connects to NATS as its own user
// of deploy/nats/accounts.conf, with the password from a Secret: without them the
// cluster refuses it, and a shared user would undo least privilege.
func checkK8sNATSCreds(c corev1.Container) error {
	role := roleOf(c.Args)
	if role == "" {
		return nil
	}
	var user string
	var pw *corev1.EnvVar
	for i, e := range c.Env {
		switch e.Name {
		case "NATTER_NATS_USER":
			user = e.Value
		case "NATTER_NATS_PASSWORD", "NATTER_NATS_PASSWORD_FILE":
			pw = &c.Env[i]
		}
	}
	switch {
	case user != role:
		return fmt.Errorf("no NATS user for role %s: set NATTER_NATS_USER=%s (deploy/nats/accounts.conf)", role, role)
	case pw == nil || (pw.Name == "NATTER_NATS_PASSWORD" && (pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil)):
		return fmt.Errorf("no NATS password for role %s: set NATTER_NATS_PASSWORD from a Secret (valueFrom.secretKeyRef)", role)
	}
	return nil
}

// checkNatterEnv checks that name is the environment variable of a natter serve
// flag and that value parses for it. The cassandra.* flags are pkg/store's own
// (store.CassandraConfig); they count whether or not the app registers them yet.
func checkNatterEnv(name, value string) error {
	for _, register := range []func(*flag.FlagSet){
		func(fs *flag.FlagSet) { (&app.Config{}).RegisterFlags(fs) },
		func(fs *flag.FlagSet) { (&store.CassandraConfig{}).RegisterFlags(fs) },
	} {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		register(fs)
		var match string
		fs.VisitAll(func(f *flag.Flag) {
			if config.EnvName(f.Name) == name {
				match = f.Name
			}
		})
		if match != "" {
			if err := fs.Set(match, value); err != nil {
				return fmt.Errorf("%s=%q: %w", name, value, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%s is not a natter setting (see natter help serve)", name)
}

// loadNatterConfig loads data as natter's YAML configuration file.
func loadNatterConfig(data string) (*app.Config, error) {
	dir, err := os.MkdirTemp("", "natter-config")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "natter.yaml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		return nil, err
	}
	cfg, _, err := app.Load("serve", []string{"-config", p})
	return cfg, err
}

func TestKubernetesManifests(t *testing.T) {
	k := newK8sChecker(t)
	docs := readManifests(t)
	require.Empty(t, k.check(docs))

	kinds := map[string]int{}
	for _, d := range docs {
		kinds[d.obj.GetKind()]++
	}
	require.GreaterOrEqual(t, kinds["Deployment"], len(allRoles(t)), "a Deployment per role")
	require.GreaterOrEqual(t, kinds["HorizontalPodAutoscaler"], 1)
	require.GreaterOrEqual(t, kinds["PodDisruptionBudget"], 1)
	require.GreaterOrEqual(t, kinds["ConfigMap"], 1)
	require.GreaterOrEqual(t, kinds["Service"], 1)
}

// TestKubernetesCheckerCatches proves the checker fails on broken manifests: each
// case breaks one object of the real files.
func TestKubernetesCheckerCatches(t *testing.T) {
	k := newK8sChecker(t)
	for _, tc := range []struct {
		name, kind, obj string
		breakIt         func(m map[string]any)
		want            string
	}{
		{"unknown field", "Deployment", "natter-gateway", func(m map[string]any) { spec(m)["replicaz"] = int64(3) }, "field not declared in schema"},
		{"wrong type", "Deployment", "natter-sequencer", func(m map[string]any) { spec(m)["replicas"] = "three" }, "expected numeric"},
		{"bad quantity", "Deployment", "natter-persister", func(m map[string]any) {
			container(m)["resources"] = map[string]any{"requests": map[string]any{"cpu": "lots", "memory": "1Gi"}}
		}, "quantities must match"},
		{"selector mismatch", "Deployment", "natter-gateway", func(m map[string]any) {
			spec(m)["selector"] = map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/component": "nope"}}
		}, "selector does not match"},
		{"unknown role", "Deployment", "natter-gateway", func(m map[string]any) {
			container(m)["args"] = []any{"serve", "--roles", "gatewy"}
		}, "unknown role"},
		{"probe on an undeclared port", "Deployment", "natter-presence", func(m map[string]any) {
			container(m)["readinessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/readyz", "port": "metrics"}}
		}, "does not declare"},
		{"no NATS credentials", "Deployment", "natter-persister", func(m map[string]any) { delete(container(m), "env") },
			"no NATS user for role persister"},
		{"NATS password in plain text", "Deployment", "natter-presence", func(m map[string]any) {
			container(m)["env"] = []any{map[string]any{"name": "NATTER_NATS_USER", "value": "presence"},
				map[string]any{"name": "NATTER_NATS_PASSWORD", "value": "hunter2"}}
		}, "no NATS password for role presence"},
		{"root filesystem writable", "Deployment", "natter-notifier", func(m map[string]any) {
			container(m)["securityContext"] = map[string]any{"readOnlyRootFilesystem": false}
		}, "read-only root filesystem"},
		{"HPA on a missing deployment", "HorizontalPodAutoscaler", "natter-gateway", func(m map[string]any) {
			spec(m)["scaleTargetRef"] = map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"}
		}, "not one of the Deployments"},
		{"service selecting nothing", "Service", "natter-gateway", func(m map[string]any) {
			spec(m)["selector"] = map[string]any{"app": "other"}
		}, "selects no Deployment"},
		{"config natter rejects", "ConfigMap", "natter-config", func(m map[string]any) {
			m["data"].(map[string]any)["natter.yaml"] = "nats:\n  replicas: many\n"
		}, "natter.yaml"},
		{"config with an unknown key", "ConfigMap", "natter-config", func(m map[string]any) {
			m["data"].(map[string]any)["natter.yaml"] = "gatewya:\n  listen: 0.0.0.0:8080\n"
		}, "gatewya"},
		{"misspelt environment variable", "Deployment", "natter-persister", func(m map[string]any) {
			container(m)["env"] = []any{map[string]any{"name": "NATTER_CASANDRA_HOSTS", "value": "cassandra"}}
		}, "NATTER_CASANDRA_HOSTS is not a natter setting"},
		{"environment value natter rejects", "Deployment", "natter-persister", func(m map[string]any) {
			container(m)["env"] = []any{map[string]any{"name": "NATTER_NATS_REPLICAS", "value": "three"}}
		}, "NATTER_NATS_REPLICAS"},
		{"envFrom a missing ConfigMap", "Deployment", "natter-sequencer", func(m map[string]any) {
			container(m)["envFrom"] = []any{map[string]any{"configMapRef": map[string]any{"name": "natter-env"}}}
		}, "no ConfigMap natter-env"},
		{"dev auth on a public address", "ConfigMap", "natter-config", func(m map[string]any) {
			editNatterYAML(m, "dev: false\n  secret_file: /etc/natter/auth/jwt.secret", "dev: true")
		}, "not a loopback address and auth is in dev mode"},
		{"dev auth allowed on a public address", "ConfigMap", "natter-config", func(m map[string]any) {
			editNatterYAML(m, "dev: false\n  secret_file: /etc/natter/auth/jwt.secret", "dev: true\n  insecure_dev_on_public_address: true")
		}, "auth.dev must be false"},
		{"pprof on", "ConfigMap", "natter-config", func(m map[string]any) {
			editNatterYAML(m, "listen: 0.0.0.0:9090", "listen: 0.0.0.0:9090\n  pprof: true")
		}, "admin.pprof must be off"},
		{"secret flag in args", "Deployment", "natter-gateway", func(m map[string]any) {
			container(m)["args"] = []any{"serve", "--roles", "gateway", "--auth.secret=" + strings.Repeat("s", 32)}
		}, "secret flag --auth.secret"},
		{"secret in plain text", "Deployment", "natter-notifier", func(m map[string]any) {
			container(m)["env"] = []any{map[string]any{"name": "NATTER_NATS_PASSWORD", "value": "hunter2"}}
		}, "a secret in plain text"},
		{"admin port open to every pod", "NetworkPolicy", "natter-admin", func(m map[string]any) {
			rule := spec(m)["ingress"].([]any)[0].(map[string]any)
			delete(rule, "from")
		}, "any source (no from) reach the admin port"},
		{"admin port open to the internet", "NetworkPolicy", "natter-admin", func(m map[string]any) {
			rule := spec(m)["ingress"].([]any)[0].(map[string]any)
			rule["from"] = []any{map[string]any{"ipBlock": map[string]any{"cidr": "0.0.0.0/0"}}}
		}, "the whole internet"},
		{"gateway policy opens every port", "NetworkPolicy", "natter-gateway-http", func(m map[string]any) {
			delete(spec(m)["ingress"].([]any)[0].(map[string]any), "ports")
		}, "reach the admin port of natter-gateway"},
		{"no policy over the pods", "NetworkPolicy", "natter-admin", func(m map[string]any) {
			spec(m)["podSelector"] = map[string]any{"matchLabels": map[string]any{"app": "other"}}
		}, "no NetworkPolicy restricts ingress"},
		{"gateway closed to clients", "NetworkPolicy", "natter-gateway-http", func(m map[string]any) {
			spec(m)["ingress"] = []any{}
		}, "no NetworkPolicy lets clients reach the gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs := readManifests(t)
			found := false
			for _, d := range docs {
				if d.obj.GetKind() == tc.kind && d.obj.GetName() == tc.obj {
					tc.breakIt(d.obj.Object)
					found = true
				}
			}
			require.True(t, found, "no %s/%s to break", tc.kind, tc.obj)
			errs := k.check(docs)
			require.NotEmpty(t, errs)
			require.ErrorContains(t, errors.Join(errs...), tc.want)
		})
	}
}

func spec(m map[string]any) map[string]any { return m["spec"].(map[string]any) }

// editNatterYAML replaces from with to in a ConfigMap's natter.yaml; from must occur.
func editNatterYAML(m map[string]any, from, to string) {
	data := m["data"].(map[string]any)
	y := data["natter.yaml"].(string)
	if !strings.Contains(y, from) {
		panic("natter.yaml has no " + from)
	}
	data["natter.yaml"] = strings.Replace(y, from, to, 1)
}

func container(m map[string]any) map[string]any {
	tmpl := spec(m)["template"].(map[string]any)["spec"].(map[string]any)
	return tmpl["containers"].([]any)[0].(map[string]any)
}

// ---- Compose ----

// loadCompose loads and validates a compose file against the compose-spec schema.
func loadCompose(content []byte, env map[string]string) (*types.Project, error) {
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  ".",
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: content}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("natter", true) })
}

func TestComposeFile(t *testing.T) {
	content, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	env := map[string]string{"NATTER_JWT_SECRET": strings.Repeat("s", 32), "NATTER_SYS_NATS_PASSWORD": "sys"}
	for _, u := range natsutil.Users {
		env[natsutil.PasswordEnv(u)] = u + "-pw"
	}
	p, err := loadCompose(content, env)
	require.NoError(t, err)

	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		s, err := p.GetService(n)
		require.NoError(t, err, "3 NATS nodes")
		require.Len(t, s.Volumes, 3)
		_, err = os.Stat(filepath.Join(s.Volumes[0].Source))
		require.NoError(t, err, "%s mounts its config file", n)
		require.Equal(t, "/etc/nats/accounts.conf", s.Volumes[1].Target, "%s mounts accounts.conf beside it", n)
		for _, u := range natsutil.Users {
			v := s.Environment[natsutil.PasswordEnv(u)]
			require.NotNil(t, v, "%s: accounts.conf reads %s", n, natsutil.PasswordEnv(u))
			require.Equal(t, u+"-pw", *v, "%s: from the environment, not the file", n)
		}
	}
	_, err = p.GetService("cassandra")
	require.NoError(t, err)
	covered := map[string]bool{}
	for _, s := range p.Services {
		if !strings.HasPrefix(s.Image, "natter") {
			continue
		}
		require.NotNil(t, s.Build, "built from deploy/Dockerfile")
		require.Equal(t, "deploy/Dockerfile", s.Build.Dockerfile)
		for k, v := range s.Environment {
			require.NotNil(t, v, "service %s: %s has a value", s.Name, k)
			require.NoError(t, checkNatterEnv(k, *v), "service %s", s.Name)
		}
		require.NoError(t, checkComposeService(s), "service %s", s.Name)
		if s.Command[0] == "migrate" {
			require.Contains(t, s.DependsOn, "cassandra", "migrate waits for Cassandra")
			continue
		}
		i := slices.Index(s.Command, "--roles")
		require.GreaterOrEqual(t, i, 0, "service %s selects its roles", s.Name)
		roles, err := app.Targets(strings.Split(s.Command[i+1], ","))
		require.NoError(t, err, "service %s", s.Name)
		for _, r := range roles {
			covered[r] = true
		}
		require.Equal(t, "3", *s.Environment["NATTER_NATS_REPLICAS"], "R3 streams on the 3-node cluster")
		for _, dep := range []string{"nats-1", "nats-2", "nats-3", "cassandra", "migrate"} {
			require.Contains(t, s.DependsOn, dep, "service %s waits for %s", s.Name, dep)
		}
	}
	for _, r := range allRoles(t) {
		require.True(t, covered[r], "a compose service runs role %s", r)
	}
	gw, err := p.GetService("gateway")
	require.NoError(t, err)
	require.NotNil(t, gw.Deploy)
	require.EqualValues(t, 2, *gw.Deploy.Replicas, "two gateways")

	// The safety checks are real: these fail.
	for _, tc := range []struct{ name, from, to, want string }{
		{"dev auth", `NATTER_AUTH_DEV: "false"`, `NATTER_AUTH_DEV: "true"`, "auth.dev must be false"},
		{"admin published on every interface", `"127.0.0.1:9380:9090"`, `"9380:9090"`, "admin port 9090 published on"},
		{"secret flag", `command: ["serve", "--roles", "presence"]`, `command: ["serve", "--roles", "presence", "--nats.password=x"]`, "secret flag"},
		{"pprof", `NATTER_LOG_FORMAT: json`, "NATTER_LOG_FORMAT: json\n    NATTER_ADMIN_PPROF: \"true\"", "admin.pprof must be off"},
		{"no NATS user", "      NATTER_NATS_USER: presence\n", "", "no NATS user for role presence"},
		{"another role's NATS user", "      NATTER_NATS_USER: notifier\n", "      NATTER_NATS_USER: admin\n", "no NATS user for role notifier"},
		{"no NATS password", "      NATTER_NATS_PASSWORD: ${NATTER_GATEWAY_NATS_PASSWORD:?set the NATS passwords (see the top of this file)}\n", "", "no NATS password for role gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(content), tc.from, tc.to, 1)
			require.NotEqual(t, string(content), bad)
			p, err := loadCompose([]byte(bad), env)
			require.NoError(t, err)
			var errs []error
			for _, s := range p.Services {
				if strings.HasPrefix(s.Image, "natter") {
					errs = append(errs, checkComposeService(s))
				}
			}
			require.ErrorContains(t, errors.Join(errs...), tc.want)
		})
	}

	// The schema check is real: these fail.
	_, err = loadCompose(content, nil)
	require.ErrorContains(t, err, "NATTER_JWT_SECRET", "the token secret is required")
	noPW := maps.Clone(env)
	delete(noPW, "NATTER_GATEWAY_NATS_PASSWORD")
	_, err = loadCompose(content, noPW)
	require.ErrorContains(t, err, "NATTER_GATEWAY_NATS_PASSWORD", "the NATS passwords are required")
	bad := bytes.Replace(content, []byte("  cassandra:\n    image:"), []byte("  cassandra:\n    imagee: x\n    image:"), 1)
	require.NotEqual(t, content, bad)
	_, err = loadCompose(bad, env)
	require.ErrorContains(t, err, "imagee")
	bad = bytes.Replace(content, []byte("replicas: 2"), []byte("replicas: two"), 1)
	_, err = loadCompose(bad, env)
	require.Error(t, err)
}

// checkComposeService checks a natter service: safe configuration (no dev auth, no
// pprof), no secret flags, and the admin port published on the host's loopback
// only.
func checkComposeService(s types.ServiceConfig) error {
	var errs []error
	cfg := app.DefaultConfig()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := s.Environment[config.EnvName(f.Name)]; ok && v != nil {
			_ = f.Value.Set(*v)
		}
	})
	if err := checkSafeConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := checkNoSecretFlags(s.Command); err != nil {
		errs = append(errs, err)
	}
	if role := roleOf(s.Command); role != "" {
		// The NATS cluster refuses a client without credentials; each role has its
		// own least-privilege user (deploy/nats/accounts.conf).
		if u := s.Environment["NATTER_NATS_USER"]; u == nil || *u != role {
			errs = append(errs, fmt.Errorf("no NATS user for role %s: set NATTER_NATS_USER: %s", role, role))
		}
		if pw := s.Environment["NATTER_NATS_PASSWORD"]; pw == nil || *pw == "" {
			errs = append(errs, fmt.Errorf("no NATS password for role %s: set NATTER_NATS_PASSWORD from the environment", role))
		}
	}
	for _, p := range s.Ports {
		if p.Target == 9090 && !gateway.LoopbackHost(p.HostIP) {
			errs = append(errs, fmt.Errorf("admin port 9090 published on %q: publish it on 127.0.0.1 only", p.HostIP))
		}
	}
	return errors.Join(errs...)
}

// ---- Dockerfile ----

// dockerfile parses and lints src, returning its stages and lint warnings.
func dockerfile(src []byte) ([]instructions.Stage, []string, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		warnings = append(warnings, rule+": "+msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	return stages, warnings, err
}

// checkImage checks the final stage: static, non-root, natter as entrypoint.
func checkImage(stages []instructions.Stage) error {
	if len(stages) < 2 {
		return errors.New("want a multi-stage build")
	}
	var errs []error
	build, final := stages[0], stages[len(stages)-1]
	static := false
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "CGO_ENABLED=0") {
			static = true
		}
	}
	if !static {
		errs = append(errs, errors.New("the build stage must build with CGO_ENABLED=0 (a static binary)"))
	}
	user, entry := "", ""
	env := map[string]string{}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entry = strings.Join(c.CmdLine, " ")
		case *instructions.RunCommand:
			errs = append(errs, errors.New("the final stage has no shell: no RUN"))
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		errs = append(errs, fmt.Errorf("the final stage must run as a non-root USER, got %q", user))
	}
	if !strings.HasSuffix(entry, "/natter") {
		errs = append(errs, fmt.Errorf("ENTRYPOINT must be the natter binary, got %q", entry))
	}
	if err := checkImageEnv(env); err != nil {
		errs = append(errs, fmt.Errorf("ENV: %w", err))
	}
	return errors.Join(errs...)
}

// checkImageEnv checks the configuration the image's ENV gives `natter serve` with
// no other settings: valid for natter, no secret baked in, dev auth off (the image
// listens on all interfaces), the admin port not on a public address, pprof off.
func checkImageEnv(env map[string]string) error {
	var errs []error
	cfg := app.DefaultConfig()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	for k, v := range env {
		if err := checkNatterEnv(k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		if isSecretEnv(k) {
			errs = append(errs, fmt.Errorf("%s: a secret baked into the image", k))
		}
		fs.VisitAll(func(f *flag.Flag) {
			if config.EnvName(f.Name) == k {
				_ = f.Value.Set(v)
			}
		})
	}
	if err := cfg.Validate(); err != nil && cfg.Auth.DevMode() {
		errs = append(errs, err) // e.g. dev auth on 0.0.0.0
	}
	if err := checkSafeConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	if host, _, err := net.SplitHostPort(cfg.Admin.Listen); cfg.Admin.Listen != "" && (err != nil || !gateway.LoopbackHost(host)) {
		errs = append(errs, fmt.Errorf("admin.listen %s: the image must keep the admin port on loopback (deployments open it behind a NetworkPolicy)", cfg.Admin.Listen))
	}
	return errors.Join(errs...)
}

func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	stages, warnings, err := dockerfile(src)
	require.NoError(t, err)
	require.Empty(t, warnings, "BuildKit lint warnings")
	require.NoError(t, checkImage(stages))
	require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", stages[len(stages)-1].BaseName)

	// The checks fail on broken Dockerfiles.
	for _, tc := range []struct{ name, from, to, want string }{
		{"root user", "USER 65532:65532", "USER root", "non-root"},
		{"no user", "USER 65532:65532\n", "", "non-root"},
		{"cgo", "CGO_ENABLED=0 ", "", "static"},
		{"unknown instruction", "EXPOSE 8080", "EXPOSES 8080", "unknown instruction"},
		{"dev auth on", "NATTER_AUTH_DEV=false", "NATTER_AUTH_DEV=true", "auth.dev must be false"},
		{"dev auth by default", "    NATTER_AUTH_DEV=false \\\n", "", "auth.dev must be false"},
		{"admin on all interfaces", "NATTER_LOG_FORMAT=json", "NATTER_LOG_FORMAT=json NATTER_ADMIN_LISTEN=0.0.0.0:9090", "admin port on loopback"},
		{"pprof on", "NATTER_LOG_FORMAT=json", "NATTER_LOG_FORMAT=json NATTER_ADMIN_PPROF=true", "admin.pprof must be off"},
		{"secret baked in", "NATTER_LOG_FORMAT=json", "NATTER_LOG_FORMAT=json NATTER_AUTH_SECRET=" + strings.Repeat("s", 32), "secret baked into the image"},
		{"lint: casing", "FROM golang:${GO_VERSION}-bookworm AS build", "FROM golang:${GO_VERSION}-bookworm as build", "FromAsCasing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(src), tc.from, tc.to, 1)
			require.NotEqual(t, string(src), bad)
			stages, warnings, err := dockerfile([]byte(bad))
			if err == nil && len(warnings) > 0 {
				err = errors.New(strings.Join(warnings, "; "))
			}
			if err == nil {
				err = checkImage(stages)
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// ---- NATS ----

// checkNATSNodeAuth loads a node config and returns an error unless it requires
// credentials: users, no anonymous user.
func checkNATSNodeAuth(t *testing.T, f string) error {
	o, err := server.ProcessConfigFile(f)
	if err != nil {
		return err
	}
	if len(o.Users) == 0 && len(o.Nkeys) == 0 && o.TrustedOperators == nil {
		return fmt.Errorf("%s: no users: clients connect without credentials (include ./accounts.conf)", f)
	}
	if o.NoAuthUser != "" {
		return fmt.Errorf("%s: no_auth_user %s lets clients in without credentials", f, o.NoAuthUser)
	}
	return nil
}

// TestAccountsConfIsGenerated: deploy/nats/accounts.conf holds exactly the users
// and permissions natter creds --accounts-conf generates (natsutil.Permissions,
// which pkg/e2e's NATS tests prove), after its comment header.
func TestAccountsConfIsGenerated(t *testing.T) {
	b, err := os.ReadFile("nats/accounts.conf")
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "accounts {")
	require.GreaterOrEqual(t, i, 0)
	for _, line := range strings.Split(strings.TrimSpace(s[:i]), "\n") {
		require.True(t, line == "" || strings.HasPrefix(line, "#"), "only comments before the accounts: %q", line)
	}
	require.Equal(t, natsutil.AccountsConf(subjects.New("", 1)), s[i:], "regenerate it: natter creds --accounts-conf")
}

func TestNATSClusterConfigs(t *testing.T) {
	t.Setenv("NATTER_SYS_NATS_PASSWORD", "sys")
	for _, u := range natsutil.Users {
		t.Setenv(natsutil.PasswordEnv(u), u+"-pw")
	}
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		f := fmt.Sprintf("nats/nats-%d.conf", i)
		o, err := server.ProcessConfigFile(f)
		require.NoError(t, err, f)
		require.True(t, o.JetStream, "%s: JetStream on", f)
		require.True(t, o.SyncAlways, "%s: fsync before acknowledging (docs/operations.md, Durability)", f)
		require.Equal(t, "natter", o.Cluster.Name, f)
		require.Len(t, o.Routes, 3, "%s: routes to all three nodes", f)
		require.Equal(t, 4222, o.Port)
		require.Equal(t, 6222, o.Cluster.Port)
		require.NotEmpty(t, o.StoreDir)
		names[o.ServerName] = true
		// Credentials: the accounts of accounts.conf, every user with a password
		// from the environment, and no anonymous access.
		require.Empty(t, o.NoAuthUser, f)
		var natter []string
		for _, u := range o.Users {
			if u.Username == "sys" {
				require.Equal(t, "sys", u.Password, f)
				continue
			}
			natter = append(natter, u.Username)
			require.Equal(t, u.Username+"-pw", u.Password, "%s: %s's password comes from %s", f, u.Username, natsutil.PasswordEnv(u.Username))
			require.Equal(t, "NATTER", u.Account.Name, f)
		}
		require.ElementsMatch(t, natsutil.Users, natter, "%s: includes accounts.conf", f)
	}
	require.Len(t, names, 3, "distinct server names")

	// A node config without the accounts fails.
	src, err := os.ReadFile("nats/nats-1.conf")
	require.NoError(t, err)
	dir := t.TempDir()
	open := filepath.Join(dir, "open.conf")
	require.NoError(t, os.WriteFile(open, bytes.Replace(src, []byte("include ./accounts.conf\n"), nil, 1), 0o600))
	require.Error(t, checkNATSNodeAuth(t, open), "a node without accounts.conf")
	require.NoError(t, checkNATSNodeAuth(t, "nats/nats-1.conf"))

	// The loader is strict: a misspelt option is an error.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	require.NoError(t, os.WriteFile(bad, []byte("jetstream { sync_intervall: always }\n"), 0o600))
	_, err = server.ProcessConfigFile(bad)
	require.Error(t, err)
}
