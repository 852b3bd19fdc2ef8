package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// Secrets that the manifests reference but that are created out of band
// (deploy/README.md); any other reference must be to a rendered Secret.
var outOfBandSecrets = []string{"locallibrary-mysql", "locallibrary-secret-key"}

// The app's own defaults (config/config.go), used when the manifests leave
// the variables unset.
const (
	defaultDrain    = 5 * time.Second
	defaultShutdown = 10 * time.Second
)

// installHints say how to get the tools the deploy tests run.
var installHints = map[string]string{
	"kubectl":    "a kubectl with kustomize, https://kubernetes.io/docs/tasks/tools/",
	"kube-score": "go install github.com/zegl/kube-score/cmd/kube-score@v1.20.0",
}

// lookPath finds a tool, skipping the test when it is missing unless
// LOCALLIBRARY_TEST_REQUIRE_SERVICES=1 (testkit.Unavailable).
func lookPath(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		testkit.Unavailable(t, "%s is not on PATH (install it: %s)", tool, installHints[tool])
	}
	return path
}

// overlays lists the kustomize overlays, failing if there are none.
func overlays(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "overlays", "*", "kustomization.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no overlays under k8s/overlays (err %v)", err)
	}
	dirs := make([]string, len(files))
	for i, f := range files {
		dirs[i] = filepath.Dir(f)
	}
	return dirs
}

// mustRender runs `kubectl kustomize dir` and decodes its output strictly.
func mustRender(t *testing.T, kubectl, dir string) []runtime.Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	objs, err := Decode(stdout.Bytes())
	if err != nil {
		t.Fatalf("%s does not decode strictly:\n%v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s rendered no objects", dir)
	}
	return objs
}

func TestDecodeRejectsBrokenManifests(t *testing.T) {
	const good = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: web
          image: web:1.0.0
`
	tests := []struct {
		name    string
		yaml    string
		wantErr string // "" means it must decode
	}{
		{"valid", good, ""},
		{"valid after an empty document", "---\n# only a comment\n---\n" + good, ""},
		{"misspelt field", strings.Replace(good, "terminationGracePeriodSeconds", "terminationGracePeriodSecond", 1), "unknown field"},
		{"field in the wrong case", strings.Replace(good, "terminationGracePeriodSeconds", "TerminationGracePeriodSeconds", 1), "unknown field"},
		{"field at the wrong level", strings.Replace(good, "  selector:\n", "  terminationGracePeriodSeconds: 30\n  selector:\n", 1), "unknown field"},
		{"duplicate key", strings.Replace(good, "  name: web\n", "  name: web\n  name: web2\n", 1), "already set"},
		{"not YAML", good + "  - : [", "document 1"},
		{"wrong value type", strings.Replace(good, "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: thirty", 1), "cannot unmarshal"},
		{"unknown kind", strings.Replace(good, "kind: Deployment", "kind: Deploymnt", 1), "no kind"},
		{"removed API version", strings.Replace(good, "apps/v1", "extensions/v1beta1", 1), "no kind"},
		{"second document broken", good + "---\n" + strings.Replace(good, "image:", "imagee:", 1), "document 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if len(objs) != 1 {
					t.Fatalf("Decode returned %d objects, want 1", len(objs))
				}
				if _, ok := objs[0].(*appsv1.Deployment); !ok {
					t.Fatalf("Decode returned a %T, want *appsv1.Deployment", objs[0])
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode accepted a broken manifest:\n%s", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decode error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestRestrictedViolationsFindsInsecurePods(t *testing.T) {
	secure := PodTemplate{
		Owner: "Pod/secure",
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "c", Image: "c:1",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if v := RestrictedViolations(secure); len(v) != 0 {
		t.Fatalf("a restricted pod was refused: %v", v)
	}

	insecure := secure
	insecure.Spec = *secure.Spec.DeepCopy()
	insecure.Spec.SecurityContext.SeccompProfile = nil
	insecure.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	insecure.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	v := RestrictedViolations(insecure)
	for _, want := range []string{"allowPrivilegeEscalation", "seccompProfile", "hostPath"} {
		if !strings.Contains(strings.Join(v, "\n"), want) {
			t.Errorf("violations %q do not mention %s", v, want)
		}
	}
}

func TestOverlays(t *testing.T) {
	kubectl := lookPath(t, "kubectl")
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := mustRender(t, kubectl, dir)
			m := index(objs)

			t.Run("namespace", func(t *testing.T) { checkNamespace(t, m) })
			t.Run("pod security restricted", func(t *testing.T) {
				for _, p := range PodTemplates(objs) {
					for _, v := range RestrictedViolations(p) {
						t.Error(v)
					}
				}
			})
			t.Run("containers", func(t *testing.T) { checkContainers(t, m) })
			t.Run("service accounts", func(t *testing.T) { checkServiceAccounts(t, m) })
			t.Run("secrets", func(t *testing.T) { checkSecretRefs(t, m) })
			t.Run("web deployment", func(t *testing.T) { checkWebDeployment(t, m) })
			t.Run("autoscaling", func(t *testing.T) { checkAutoscaling(t, m) })
			t.Run("selectors", func(t *testing.T) { checkSelectors(t, m) })
			t.Run("network policies", func(t *testing.T) { checkNetworkPolicies(t, m) })
			t.Run("metrics kept inside", func(t *testing.T) { checkMetricsPrivate(t, m) })
			t.Run("listens on every interface", func(t *testing.T) { checkListenAddrs(t, m) })
			t.Run("memcached", func(t *testing.T) { checkMemcached(t, m) })
			t.Run("secret key", func(t *testing.T) { checkSecretKey(t, m) })
			t.Run("migration job", func(t *testing.T) { checkMigrationJob(t, m) })
			t.Run("ingress without snippets", func(t *testing.T) { checkIngressSnippets(t, m) })
			if filepath.Base(dir) == "prod" {
				t.Run("production settings", func(t *testing.T) { checkProduction(t, m) })
			}
		})
	}
}

// TestKubeScore runs check.sh, which scores every overlay with kube-score.
func TestKubeScore(t *testing.T) {
	lookPath(t, "kubectl")
	lookPath(t, "kube-score")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "check.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("check.sh: %v\n%s", err, out)
	}
}

// manifests is a rendered overlay, by kind.
type manifests struct {
	all          []runtime.Object
	namespaces   []*corev1.Namespace
	accounts     map[string]*corev1.ServiceAccount
	secrets      map[string]*corev1.Secret
	services     []*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	jobs         map[string]*batchv1.Job
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
	ingresses    []*networkingv1.Ingress
	pods         []PodTemplate
}

func index(objs []runtime.Object) manifests {
	m := manifests{
		all:          objs,
		accounts:     map[string]*corev1.ServiceAccount{},
		secrets:      map[string]*corev1.Secret{},
		deployments:  map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		jobs:         map[string]*batchv1.Job{},
		pods:         PodTemplates(objs),
	}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *corev1.Namespace:
			m.namespaces = append(m.namespaces, o)
		case *corev1.ServiceAccount:
			m.accounts[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *corev1.Service:
			m.services = append(m.services, o)
		case *appsv1.Deployment:
			m.deployments[o.Name] = o
		case *appsv1.StatefulSet:
			m.statefulSets[o.Name] = o
		case *batchv1.Job:
			m.jobs[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *networkingv1.NetworkPolicy:
			m.policies = append(m.policies, o)
		case *networkingv1.Ingress:
			m.ingresses = append(m.ingresses, o)
		}
	}
	return m
}

// web returns the app's Deployment and its container.
func (m manifests) web(t *testing.T) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d, ok := m.deployments["locallibrary"]
	if !ok {
		t.Fatal("no Deployment locallibrary")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "locallibrary" {
			return d, c
		}
	}
	t.Fatal("Deployment locallibrary has no container locallibrary")
	return nil, corev1.Container{}
}

// env returns a container's literal value for name, and whether it is set.
func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func checkNamespace(t *testing.T, m manifests) {
	if len(m.namespaces) != 1 {
		t.Fatalf("got %d Namespace objects, want 1", len(m.namespaces))
	}
	ns := m.namespaces[0]
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace %s: pod-security.kubernetes.io/enforce is %q, want restricted", ns.Name, got)
	}
	for _, obj := range m.all {
		o, err := meta.Accessor(obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, isNS := obj.(*corev1.Namespace); isNS {
			continue
		}
		if o.GetNamespace() != ns.Name {
			t.Errorf("%T %s is in namespace %q, want %q", obj, o.GetName(), o.GetNamespace(), ns.Name)
		}
	}
}

func checkContainers(t *testing.T, m manifests) {
	if len(m.pods) == 0 {
		t.Fatal("no pod templates")
	}
	for _, p := range m.pods {
		for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
			who := p.Owner + " container " + c.Name
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				if !hasReq || !hasLim {
					t.Errorf("%s: %s request and limit must both be set", who, r)
				} else if req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s is above its limit %s", who, r, req.String(), lim.String())
				}
			}
			if err := checkImage(c.Image); err != nil {
				t.Errorf("%s: %v", who, err)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true", who)
			}
			var seen []string
			for _, e := range c.Env {
				if slices.Contains(seen, e.Name) {
					t.Errorf("%s: env %s is set twice", who, e.Name)
				}
				seen = append(seen, e.Name)
			}
		}
	}
}

// checkImage refuses images without a version: no tag, "latest", or the
// unreplaced placeholder of the base.
func checkImage(image string) error {
	if image == "locallibrary" {
		return fmt.Errorf("image %q is the base's placeholder: set it in the overlay's images", image)
	}
	if _, _, ok := strings.Cut(image, "@sha256:"); ok {
		return nil
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	if !ok || tag == "" || tag == "latest" {
		return fmt.Errorf("image %q has no version tag or digest", image)
	}
	return nil
}

func checkServiceAccounts(t *testing.T, m manifests) {
	for name, sa := range m.accounts {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s: automountServiceAccountToken must be false", name)
		}
	}
	for _, p := range m.pods {
		automount := p.Spec.AutomountServiceAccountToken
		if automount == nil {
			if sa, ok := m.accounts[p.Spec.ServiceAccountName]; ok {
				automount = sa.AutomountServiceAccountToken
			}
		}
		if automount == nil || *automount {
			t.Errorf("%s mounts a service account token", p.Owner)
		}
		if name := p.Spec.ServiceAccountName; name != "" {
			if _, ok := m.accounts[name]; !ok {
				t.Errorf("%s uses ServiceAccount %s, which is not rendered", p.Owner, name)
			}
		}
	}
}

func checkSecretRefs(t *testing.T, m manifests) {
	for _, p := range m.pods {
		for _, c := range p.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				s, rendered := m.secrets[ref.Name]
				switch {
				case rendered:
					if _, ok := s.Data[ref.Key]; !ok {
						t.Errorf("%s env %s: Secret %s has no key %s", p.Owner, e.Name, ref.Name, ref.Key)
					}
				case !slices.Contains(outOfBandSecrets, ref.Name):
					t.Errorf("%s env %s: Secret %s is neither rendered nor one of the out-of-band secrets %v", p.Owner, e.Name, ref.Name, outOfBandSecrets)
				}
			}
		}
	}
}

func checkWebDeployment(t *testing.T, m manifests) {
	d, c := m.web(t)

	s := d.Spec.Strategy
	if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil {
		t.Fatalf("strategy is %q, want RollingUpdate with maxUnavailable 0", s.Type)
	}
	if mu := s.RollingUpdate.MaxUnavailable; mu == nil || mu.String() != "0" && mu.String() != "0%" {
		t.Errorf("maxUnavailable is %v, want 0", mu)
	}
	if ms := s.RollingUpdate.MaxSurge; ms == nil || ms.String() == "0" || ms.String() == "0%" {
		t.Errorf("maxSurge is %v, want above 0 (with maxUnavailable 0 the rollout needs room)", ms)
	}

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/livez"},
		{"livenessProbe", c.LivenessProbe, "/livez"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: missing, or not an HTTP GET", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
	}
	if rp := c.ReadinessProbe; rp != nil {
		if rp.PeriodSeconds == 0 || rp.PeriodSeconds > 5 {
			t.Errorf("readinessProbe.periodSeconds is %d, want 1..5 so draining takes effect fast", rp.PeriodSeconds)
		}
		// /readyz waits up to a second for MySQL.
		if rp.TimeoutSeconds < 2 {
			t.Errorf("readinessProbe.timeoutSeconds is %d, want at least 2", rp.TimeoutSeconds)
		}
	}

	// The grace period must cover the preStop sleep, the drain and the
	// shutdown timeout, or SIGKILL cuts requests off.
	var preStop time.Duration
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("no lifecycle.preStop.sleep")
	} else {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	drain := envDuration(t, c, "LOCALLIBRARY_SHUTDOWN_DRAIN", defaultDrain)
	shutdown := envDuration(t, c, "LOCALLIBRARY_SHUTDOWN_TIMEOUT", defaultShutdown)
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Error("terminationGracePeriodSeconds is not set")
	} else if g := time.Duration(*grace) * time.Second; g <= preStop+drain+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v is not above preStop %v + drain %v + shutdown %v", g, preStop, drain, shutdown)
	}

	// GOMEMLIMIT: a soft limit below the hard one, with room for what the Go
	// runtime does not count.
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	raw, set := env(c, "GOMEMLIMIT")
	switch {
	case !ok:
		t.Error("no memory limit")
	case !set:
		t.Error("GOMEMLIMIT is not set")
	default:
		soft, err := parseGoMemLimit(raw)
		if err != nil {
			t.Fatalf("GOMEMLIMIT: %v", err)
		}
		if ratio := float64(soft) / float64(limit.Value()); ratio < 0.75 || ratio > 0.95 {
			t.Errorf("GOMEMLIMIT %s is %.0f%% of limits.memory %s, want 75-95%%", raw, 100*ratio, limit.String())
		}
		checkConnectionCap(t, c, soft)
	}

	if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Error("no topologySpreadConstraints")
	}
	if name := d.Labels["app.kubernetes.io/name"]; name == "" {
		t.Error("no app.kubernetes.io/name label")
	}
}

func envDuration(t *testing.T, c corev1.Container, name string, def time.Duration) time.Duration {
	t.Helper()
	raw, ok := env(c, name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		t.Errorf("%s=%q: %v", name, raw, err)
	}
	return d
}

// Measured by app's TestConnectionCap: 2,000 idle connections held 37 MiB
// (fasthttp's 16 KiB read buffer, a goroutine); the heap beside the page
// cache is config.MemoryBesideCacheMiB.
const (
	bytesPerConnection  = 20 << 10
	heapBesideCacheMiB  = 32
	defaultPageCacheMiB = 16
)

// checkConnectionCap requires LOCALLIBRARY_HTTP_MAX_CONNS set, with the
// connections at the cap fitting under GOMEMLIMIT beside the page cache
// and the rest of the heap: a flood of idle connections then meets the
// cap's 503 before the kernel's OOM killer.
func checkConnectionCap(t *testing.T, c corev1.Container, goMemLimit int64) {
	raw, ok := env(c, "LOCALLIBRARY_HTTP_MAX_CONNS")
	conns, err := strconv.Atoi(raw)
	if !ok || err != nil || conns < 1 {
		t.Errorf("LOCALLIBRARY_HTTP_MAX_CONNS=%q: set the per-replica connection cap", raw)
		return
	}
	cacheMiB := defaultPageCacheMiB
	if v, ok := env(c, "LOCALLIBRARY_PAGE_CACHE_MIB"); ok {
		if cacheMiB, err = strconv.Atoi(v); err != nil {
			t.Fatalf("LOCALLIBRARY_PAGE_CACHE_MIB=%q", v)
		}
	}
	need := int64(conns)*bytesPerConnection + int64(cacheMiB+heapBesideCacheMiB)<<20
	if need > goMemLimit {
		t.Errorf("%d connections (%d MiB) + page cache %d MiB + heap %d MiB exceed GOMEMLIMIT (%d MiB)",
			conns, int64(conns)*bytesPerConnection>>20, cacheMiB, heapBesideCacheMiB, goMemLimit>>20)
	}
}

// parseGoMemLimit reads GOMEMLIMIT's syntax: bytes with an optional B, KiB,
// MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a byte count such as 115MiB", s)
	}
	return n * mult, nil
}

func checkAutoscaling(t *testing.T, m manifests) {
	if len(m.hpas) == 0 {
		t.Fatal("no HorizontalPodAutoscaler")
	}
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" {
			t.Errorf("HPA %s targets a %s", h.Name, ref.Kind)
			continue
		}
		d, ok := m.deployments[ref.Name]
		if !ok {
			t.Errorf("HPA %s targets Deployment %s, which is not rendered", h.Name, ref.Name)
			continue
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas, but HPA %s owns the count", d.Name, h.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
			t.Errorf("HPA %s: minReplicas must be at least 2", h.Name)
		}
		cpu := false
		for _, metric := range h.Spec.Metrics {
			cpu = cpu || metric.Resource != nil && metric.Resource.Name == corev1.ResourceCPU
		}
		if !cpu {
			t.Errorf("HPA %s does not scale on CPU", h.Name)
		}
	}
	if _, ok := m.deployments["locallibrary"]; ok && !slices.ContainsFunc(m.hpas, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return h.Spec.ScaleTargetRef.Name == "locallibrary"
	}) {
		t.Error("no HPA targets Deployment locallibrary")
	}
}

// checkSelectors makes sure Services, PDBs and NetworkPolicies select pods
// that exist, and that each Deployment or StatefulSet has a PDB.
func checkSelectors(t *testing.T, m manifests) {
	matching := func(sel labels.Selector) []PodTemplate {
		var out []PodTemplate
		for _, p := range m.pods {
			if sel.Matches(labels.Set(p.Meta.Labels)) {
				out = append(out, p)
			}
		}
		return out
	}
	for _, s := range m.services {
		pods := matching(labels.SelectorFromSet(s.Spec.Selector))
		if len(s.Spec.Selector) == 0 || len(pods) == 0 {
			t.Errorf("Service %s selects no pods", s.Name)
			continue
		}
		for _, port := range s.Spec.Ports {
			if port.TargetPort.Type != intstr.String {
				continue
			}
			for _, p := range pods {
				if !hasPort(p.Spec, port.TargetPort.StrVal) {
					t.Errorf("Service %s: %s has no port named %s", s.Name, p.Owner, port.TargetPort.StrVal)
				}
			}
		}
	}
	for _, i := range m.ingresses {
		for _, rule := range i.Spec.Rules {
			for _, path := range rule.HTTP.Paths {
				svc := path.Backend.Service
				if svc == nil || !slices.ContainsFunc(m.services, func(s *corev1.Service) bool { return s.Name == svc.Name }) {
					t.Errorf("Ingress %s routes to a Service that is not rendered", i.Name)
				}
			}
		}
	}
	covered := map[string]bool{}
	for _, b := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		pods := matching(sel)
		if len(pods) == 0 {
			t.Errorf("PodDisruptionBudget %s selects no pods", b.Name)
		}
		for _, p := range pods {
			covered[p.Owner] = true
		}
	}
	for name, d := range m.deployments {
		if d.Spec.Replicas != nil && *d.Spec.Replicas == 1 {
			continue // a single dev pod: a budget would only block drains
		}
		if !covered["Deployment/"+name] {
			t.Errorf("Deployment %s has no PodDisruptionBudget", name)
		}
	}
	for name := range m.statefulSets {
		if !covered["StatefulSet/"+name] {
			t.Errorf("StatefulSet %s has no PodDisruptionBudget", name)
		}
	}
}

func hasPort(spec corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func checkNetworkPolicies(t *testing.T, m manifests) {
	denyAll := slices.ContainsFunc(m.policies, func(p *networkingv1.NetworkPolicy) bool {
		return len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) &&
			len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0
	})
	if !denyAll {
		t.Error("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
	}

	d, _ := m.web(t)
	webLabels := labels.Set(d.Spec.Template.Labels)
	selecting := func(kind networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
		var out []*networkingv1.NetworkPolicy
		for _, p := range m.policies {
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(webLabels) && slices.Contains(p.Spec.PolicyTypes, kind) {
				out = append(out, p)
			}
		}
		return out
	}
	type port struct {
		proto corev1.Protocol
		num   int
	}
	allowed := func(kind networkingv1.PolicyType) []port {
		var out []port
		for _, p := range selecting(kind) {
			var lists [][]networkingv1.NetworkPolicyPort
			if kind == networkingv1.PolicyTypeIngress {
				for _, r := range p.Spec.Ingress {
					lists = append(lists, r.Ports)
				}
			} else {
				for _, r := range p.Spec.Egress {
					lists = append(lists, r.Ports)
				}
			}
			for _, ports := range lists {
				if len(ports) == 0 {
					out = append(out, port{"any", 0}) // a rule without ports allows every port
				}
				for _, pp := range ports {
					proto := corev1.ProtocolTCP
					if pp.Protocol != nil {
						proto = *pp.Protocol
					}
					if pp.Port != nil {
						out = append(out, port{proto, pp.Port.IntValue()})
					}
				}
			}
		}
		return out
	}
	if in := allowed(networkingv1.PolicyTypeIngress); !slices.Equal(in, []port{{corev1.ProtocolTCP, 8080}, {corev1.ProtocolTCP, 9090}}) {
		t.Errorf("web pods accept %v, want only TCP 8080 (the site) and 9090 (/metrics)", in)
	}
	out := allowed(networkingv1.PolicyTypeEgress)
	for _, want := range []port{{corev1.ProtocolUDP, 53}, {corev1.ProtocolTCP, 53}, {corev1.ProtocolTCP, 3306}, {corev1.ProtocolTCP, 11211}} {
		if !slices.Contains(out, want) {
			t.Errorf("web pods may not reach %s %d", want.proto, want.num)
		}
	}
	for _, p := range out {
		if !slices.Contains([]int{53, 3306, 11211}, p.num) {
			t.Errorf("web pods may reach %s %d, which they do not need", p.proto, p.num)
		}
	}
}

// checkMetricsPrivate checks /metrics cannot be reached from outside: the
// app serves it on its own port, which Prometheus is pointed at and which
// no Ingress routes to, and only Prometheus's pods may reach that port.
func checkMetricsPrivate(t *testing.T, m manifests) {
	d, c := m.web(t)
	port := func(addr string) int {
		_, p, _ := strings.Cut(addr, ":")
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("address %q has no port", addr)
		}
		return n
	}
	httpAddr, _ := env(c, "LOCALLIBRARY_HTTP_ADDR")
	metricsAddr, ok := env(c, "LOCALLIBRARY_METRICS_ADDR")
	if !ok || port(metricsAddr) == port(httpAddr) {
		t.Fatalf("LOCALLIBRARY_METRICS_ADDR %q must be set to a port apart from LOCALLIBRARY_HTTP_ADDR %q", metricsAddr, httpAddr)
	}
	metricsPort := port(metricsAddr)
	named := func(name string) int {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort)
			}
		}
		return 0
	}
	if named("metrics") != metricsPort {
		t.Errorf("container port metrics is %d, LOCALLIBRARY_METRICS_ADDR's %d", named("metrics"), metricsPort)
	}
	if a := d.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(metricsPort) {
		t.Errorf("scrape annotations %v do not point at port %d", a, metricsPort)
	}
	// Whatever an Ingress routes to must land on the site's port.
	for _, i := range m.ingresses {
		for _, rule := range i.Spec.Rules {
			for _, path := range rule.HTTP.Paths {
				b := path.Backend.Service
				for _, s := range m.services {
					for _, sp := range s.Spec.Ports {
						if s.Name != b.Name || (sp.Name != b.Port.Name && sp.Port != b.Port.Number) {
							continue
						}
						if target := sp.TargetPort; target.StrVal == "metrics" || target.IntValue() == metricsPort || named(target.StrVal) == metricsPort {
							t.Errorf("Ingress %s path %s reaches the metrics port", i.Name, path.Path)
						}
					}
				}
			}
		}
	}
	// The rules that open the metrics port name Prometheus, never the
	// ingress controller.
	for _, p := range m.policies {
		for _, r := range p.Spec.Ingress {
			opens := len(r.Ports) == 0
			for _, pp := range r.Ports {
				opens = opens || pp.Port.IntValue() == metricsPort
			}
			if !opens {
				continue
			}
			for _, peer := range r.From {
				if peer.NamespaceSelector == nil || peer.PodSelector == nil ||
					peer.PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
					t.Errorf("NetworkPolicy %s opens the metrics port to %+v, not only to Prometheus", p.Name, peer)
				}
			}
		}
	}
}

// checkListenAddrs requires the site and /metrics addresses set, on every
// interface: the binary's own defaults are loopback, which in a pod only
// the pod itself reaches (the kubelet's probes would fail).
func checkListenAddrs(t *testing.T, m manifests) {
	_, c := m.web(t)
	for _, name := range []string{"LOCALLIBRARY_HTTP_ADDR", "LOCALLIBRARY_METRICS_ADDR"} {
		addr, _ := env(c, name)
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || (host != "" && (ip == nil || !ip.IsUnspecified())) {
			t.Errorf("%s=%q, want every interface (\":8080\"): the app's default is loopback", name, addr)
		}
	}
}

// checkSecretKey requires LOCALLIBRARY_SECRET_KEY from a Secret: the
// app refuses to serve without it, and replicas must share one.
func checkSecretKey(t *testing.T, m manifests) {
	_, c := m.web(t)
	for _, e := range c.Env {
		if e.Name == "LOCALLIBRARY_SECRET_KEY" {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Error("LOCALLIBRARY_SECRET_KEY is not read from a Secret")
			}
			return
		}
	}
	t.Error("LOCALLIBRARY_SECRET_KEY is not set: the app will not serve without it")
}

// checkMemcached matches the app's LOCALLIBRARY_MEMCACHED_SERVERS to the
// memcached StatefulSet and its headless Service.
func checkMemcached(t *testing.T, m manifests) {
	_, c := m.web(t)
	raw, _ := env(c, "LOCALLIBRARY_MEMCACHED_SERVERS")
	if raw == "" {
		t.Fatal("LOCALLIBRARY_MEMCACHED_SERVERS is not set")
	}
	servers := strings.Split(raw, ",")
	replicas := 1
	if v, ok := env(c, "LOCALLIBRARY_SESSION_REPLICAS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 2 {
			t.Fatalf("LOCALLIBRARY_SESSION_REPLICAS=%q, want 1 or 2", v)
		}
		replicas = n
	}
	if replicas > len(servers) {
		t.Errorf("LOCALLIBRARY_SESSION_REPLICAS=%d but %d servers are listed", replicas, len(servers))
	}

	sts, ok := m.statefulSets["memcached"]
	if !ok {
		t.Fatal("no StatefulSet memcached")
	}
	if n := ptr.Deref(sts.Spec.Replicas, 1); int(n) != len(servers) {
		t.Errorf("StatefulSet memcached has %d replicas, the app lists %d servers", n, len(servers))
	}
	headless := slices.ContainsFunc(m.services, func(s *corev1.Service) bool {
		return s.Name == sts.Spec.ServiceName && s.Spec.ClusterIP == corev1.ClusterIPNone
	})
	if !headless {
		t.Errorf("StatefulSet memcached: serviceName %q is not a rendered headless Service", sts.Spec.ServiceName)
	}
	for i, s := range servers {
		if want := fmt.Sprintf("memcached-%d.%s:11211", i, sts.Spec.ServiceName); s != want {
			t.Errorf("server %d is %q, want %q", i, s, want)
		}
	}

	// Memory limit = -m plus headroom: the kernel must not OOM-kill a cache
	// that is merely full.
	mc := sts.Spec.Template.Spec.Containers[0]
	var itemMiB int64
	for _, a := range mc.Args {
		if v, ok := strings.CutPrefix(a, "--memory-limit="); ok {
			itemMiB, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	limit := mc.Resources.Limits[corev1.ResourceMemory]
	if itemMiB == 0 {
		t.Fatal("memcached has no --memory-limit argument")
	}
	if headroom := limit.Value() - itemMiB<<20; headroom < 16<<20 || headroom > 64<<20 {
		t.Errorf("memcached --memory-limit=%d with limits.memory %s: want 16-64Mi of headroom", itemMiB, limit.String())
	}

	checkMemcachedConns(t, m, mc)

	// Probes that speak to memcached: a TCP connect passes while a hung
	// memcached's kernel still accepts connections.
	for name, p := range map[string]*corev1.Probe{"readinessProbe": mc.ReadinessProbe, "livenessProbe": mc.LivenessProbe} {
		if p == nil || p.Exec == nil || !strings.Contains(strings.Join(p.Exec.Command, " "), "11211") {
			t.Errorf("memcached %s must exec a check that asks memcached, got %+v", name, p)
			continue
		}
		if p.TimeoutSeconds < 1 || p.TimeoutSeconds >= p.PeriodSeconds {
			t.Errorf("memcached %s: timeoutSeconds %d must bound a hung check within periodSeconds %d", name, p.TimeoutSeconds, p.PeriodSeconds)
		}
	}
}

// checkMemcachedConns checks that memcached's --conn-limit covers every
// web pod's pool (LOCALLIBRARY_MEMCACHED_MAX_CONNS) at the HPA's maximum
// plus the rollout's surge.
func checkMemcachedConns(t *testing.T, m manifests, mc corev1.Container) {
	d, c := m.web(t)
	v, ok := env(c, "LOCALLIBRARY_MEMCACHED_MAX_CONNS")
	perPod, err := strconv.Atoi(v)
	if !ok || err != nil || perPod < 1 {
		t.Fatalf("LOCALLIBRARY_MEMCACHED_MAX_CONNS=%q: set it explicitly, memcached's --conn-limit is sized from it", v)
	}
	var connLimit int
	for _, a := range mc.Args {
		if v, ok := strings.CutPrefix(a, "--conn-limit="); ok {
			connLimit, _ = strconv.Atoi(v)
		}
	}
	maxPods := 0
	for _, h := range m.hpas {
		if h.Spec.ScaleTargetRef.Name == d.Name {
			maxPods = int(h.Spec.MaxReplicas)
		}
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, maxPods, true)
		if err != nil {
			t.Fatal(err)
		}
		maxPods += surge
	}
	// +1: a node that failed is probed over a connection of its own.
	if need := (perPod + 1) * maxPods; connLimit < need {
		t.Errorf("memcached --conn-limit=%d < %d pods x (%d connections + 1 probe) = %d", connLimit, maxPods, perPod, need)
	}
}

func checkMigrationJob(t *testing.T, m manifests) {
	j, ok := m.jobs["locallibrary-migrate"]
	if !ok {
		t.Fatal("no Job locallibrary-migrate")
	}
	c := j.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate"}) || len(c.Command) != 0 {
		t.Errorf("Job runs command %q args %q, want the image's entrypoint with args [migrate]", c.Command, c.Args)
	}
	if _, web := m.web(t); c.Image != web.Image {
		t.Errorf("Job image %s differs from the app's %s", c.Image, web.Image)
	}
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever && j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("Job restartPolicy %q", j.Spec.Template.Spec.RestartPolicy)
	}
	if j.Spec.ActiveDeadlineSeconds == nil {
		t.Error("Job has no activeDeadlineSeconds: a hung migration would never fail")
	}
}

// checkHeaderNamesSecrets requires the overlay's header comment, which
// says what to create before applying it, to name every Secret (and key)
// the rendered objects use but do not render.
func checkHeaderNamesSecrets(t *testing.T, m manifests, kustomization string) {
	src, err := os.ReadFile(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	var header strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		header.WriteString(strings.TrimSpace(strings.TrimPrefix(line, "#")) + " ")
	}
	need := map[string]string{} // Secret name → key ("" for a whole Secret)
	for _, p := range m.pods {
		for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					need[e.ValueFrom.SecretKeyRef.Name] = e.ValueFrom.SecretKeyRef.Key
				}
			}
		}
	}
	for _, i := range m.ingresses {
		for _, tls := range i.Spec.TLS {
			need[tls.SecretName] = ""
		}
	}
	for name, key := range need {
		if _, rendered := m.secrets[name]; rendered {
			continue
		}
		want := "Secret " + name
		if key != "" {
			want += ", key " + key
		}
		if !strings.Contains(header.String(), want) {
			t.Errorf("%s's header does not say to create %q (%s): it is used but not rendered", kustomization, want, name)
		}
	}
}

// checkIngressSnippets refuses ingress-nginx's snippet annotations: raw
// nginx config that the controller turns off by default for what it can
// reach (its own secrets among them). Nothing here needs one: a request
// id, say, is the replica's own whatever the controller passes.
func checkIngressSnippets(t *testing.T, m manifests) {
	for _, i := range m.ingresses {
		for key := range i.Annotations {
			if strings.HasPrefix(key, "nginx.ingress.kubernetes.io/") && strings.HasSuffix(key, "-snippet") {
				t.Errorf("Ingress %s has %s", i.Name, key)
			}
		}
	}
}

func checkProduction(t *testing.T, m manifests) {
	_, c := m.web(t)
	for name, want := range map[string]string{
		"LOCALLIBRARY_COOKIE_SECURE":    "true",
		"LOCALLIBRARY_SESSION_REPLICAS": "2",
	} {
		if got, _ := env(c, name); got != want {
			t.Errorf("%s=%q, want %q", name, got, want)
		}
	}
	if len(m.secrets) != 0 {
		t.Errorf("production renders %d Secrets; its secrets are created out of band", len(m.secrets))
	}
	checkHeaderNamesSecrets(t, m, filepath.Join("k8s", "overlays", "prod", "kustomization.yaml"))
	for _, i := range m.ingresses {
		if len(i.Spec.TLS) == 0 {
			t.Errorf("Ingress %s has no TLS", i.Name)
		}
	}
	for _, h := range m.hpas {
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 3 {
			t.Errorf("HPA %s: minReplicas must be at least 3 in production (one per zone)", h.Name)
		}
	}
	if _, ok := m.deployments["mysql"]; ok {
		t.Error("production runs a MySQL Deployment; it uses an external one")
	}
}
