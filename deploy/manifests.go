// Package deploy holds LocalLibrary's deployment files (Dockerfile, the
// kustomize tree under k8s/, check.sh) and the code that checks rendered
// manifests offline: strict decoding into the k8s.io/api types and the Pod
// Security "restricted" profile. validate_test.go applies it to every
// overlay.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

// scheme knows the API groups the manifests may use. A kind outside them
// (a typo, a CRD, a removed beta version) does not decode.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		batchv1.AddToScheme,
		autoscalingv2.AddToScheme,
		policyv1.AddToScheme,
		networkingv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictDecoder is the API server's own decoding path with strict checking:
// duplicate keys, unknown or wrongly cased fields and mistyped values fail.
var strictDecoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// Decode splits a multi-document YAML stream and decodes each document into
// its k8s.io/api type, strictly. Every bad document is reported, not just
// the first.
func Decode(stream []byte) ([]runtime.Object, error) {
	reader := yamlutil.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var objs []runtime.Object
	var errs []error
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		// Documents holding only comments or whitespace are not objects.
		if j, err := yaml.YAMLToJSON(doc); err == nil && string(j) == "null" {
			continue
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			what := "kind not read"
			if gvk != nil {
				what = gvk.String()
			}
			errs = append(errs, fmt.Errorf("document %d (%s): %w", n, what, err))
			continue
		}
		objs = append(objs, obj)
	}
	return objs, errors.Join(errs...)
}

// PodTemplate is the pod a workload object creates.
type PodTemplate struct {
	Owner string // kind/name, for messages
	Meta  metav1.ObjectMeta
	Spec  corev1.PodSpec
}

// PodTemplates returns the pod template of every workload in objs.
func PodTemplates(objs []runtime.Object) []PodTemplate {
	var out []PodTemplate
	for _, obj := range objs {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			out = append(out, PodTemplate{"Deployment/" + o.Name, o.Spec.Template.ObjectMeta, o.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			out = append(out, PodTemplate{"StatefulSet/" + o.Name, o.Spec.Template.ObjectMeta, o.Spec.Template.Spec})
		case *appsv1.DaemonSet:
			out = append(out, PodTemplate{"DaemonSet/" + o.Name, o.Spec.Template.ObjectMeta, o.Spec.Template.Spec})
		case *appsv1.ReplicaSet:
			out = append(out, PodTemplate{"ReplicaSet/" + o.Name, o.Spec.Template.ObjectMeta, o.Spec.Template.Spec})
		case *batchv1.Job:
			out = append(out, PodTemplate{"Job/" + o.Name, o.Spec.Template.ObjectMeta, o.Spec.Template.Spec})
		case *batchv1.CronJob:
			t := o.Spec.JobTemplate.Spec.Template
			out = append(out, PodTemplate{"CronJob/" + o.Name, t.ObjectMeta, t.Spec})
		case *corev1.Pod:
			out = append(out, PodTemplate{"Pod/" + o.Name, o.ObjectMeta, o.Spec})
		}
	}
	return out
}

// restricted evaluates pods with the checks of the pod-security-admission
// release that matches k8s.io/api.
var restricted = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

// RestrictedViolations checks a pod template against the latest Pod Security
// "restricted" profile, as admission does in a namespace labelled
// pod-security.kubernetes.io/enforce: restricted. It returns one line per
// failed check; none means the pod would be admitted.
func RestrictedViolations(p PodTemplate) []string {
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	var out []string
	for _, r := range restricted.EvaluatePod(lv, &p.Meta, &p.Spec) {
		if !r.Allowed {
			out = append(out, fmt.Sprintf("%s: %s (%s)", p.Owner, r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return out
}
