package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/pave-platform/pave/internal/kube"
)

// Labels Pave puts on what it runs in Kubernetes. The pod label `version`
// is what Istio subsets and per-version Services select.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelVersion   = "version"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ContainerPort  = 8080
)

// ErrRolloutFailed marks a Deployment Kubernetes gave up on
// (ProgressDeadlineExceeded): a release fails on it with the reason.
var ErrRolloutFailed = errors.New("rollout failed")

// KubernetesOptions configure the Kubernetes target.
type KubernetesOptions struct {
	Cluster    *kube.Cluster // Cluster.Name names the cluster in every error
	Namespace  string        // default "default"
	Datacenter string
	Log        *slog.Logger
}

// Kubernetes runs versions as Deployments in one cluster: a Deployment
// SERVICE-VERSION per version (the stable one keeps its size until the
// release engine removes it after promotion), a Service SERVICE-VERSION per
// version for Gateway API backendRefs, and the Service SERVICE that Istio
// routes to. Everything is written by server-side apply with field manager
// "pave", so fields that the team or other tools set are left alone.
type Kubernetes struct {
	o KubernetesOptions
}

var _ Target = (*Kubernetes)(nil)

// NewKubernetes returns the target.
func NewKubernetes(o KubernetesOptions) (*Kubernetes, error) {
	if o.Cluster == nil || o.Cluster.Kube == nil {
		return nil, errors.New("kubernetes target: no cluster clients")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Kubernetes{o: o}, nil
}

func objName(service, version string) string { return service + "-" + version }

// fail names the cluster and the object and says what to do about the
// usual causes.
func (k *Kubernetes) fail(verb, kind, name string, err error) error {
	obj := fmt.Sprintf("%s %s/%s", kind, k.o.Namespace, name)
	c := k.o.Cluster.Name
	switch {
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return fmt.Errorf("cluster %s: not authorised to %s %s: check the kubeconfig's user and its RBAC: %w", c, verb, obj, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("cluster %s: %s: %w (%v)", c, obj, ErrNotFound, err)
	case isUnreachable(err):
		return fmt.Errorf("cluster %s unreachable (%s %s): %w", c, verb, obj, err)
	}
	return fmt.Errorf("cluster %s: %s %s: %w", c, verb, obj, err)
}

func isUnreachable(err error) bool {
	if err == nil {
		return false
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") || strings.Contains(s, "i/o timeout") ||
		strings.Contains(s, "context deadline exceeded") || strings.Contains(s, "EOF")
}

// Deploy applies the version's Deployment and Services.
func (k *Kubernetes) Deploy(ctx context.Context, d Deployment) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Image == "" {
		return invalid("image", "the kubernetes target runs images; pass --image REF (source and binary run on the local target)")
	}
	name := objName(d.Service, d.Version)
	opts := metav1.ApplyOptions{FieldManager: kube.FieldManager, Force: true}
	// Force only takes over the fields Pave's apply sets (replicas, the app
	// container, labels); anything else stays with its manager.
	if _, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).Apply(ctx, k.deployment(d), opts); err != nil {
		return k.fail("apply", "deployment", name, err)
	}
	for _, svc := range []*corev1ac.ServiceApplyConfiguration{k.service(name, d.Service, d.Version), k.service(d.Service, d.Service, "")} {
		if _, err := k.o.Cluster.Kube.CoreV1().Services(k.o.Namespace).Apply(ctx, svc, opts); err != nil {
			return k.fail("apply", "service", *svc.Name, err)
		}
	}
	return nil
}

// deployment builds the applied Deployment: what Pave owns, nothing more.
func (k *Kubernetes) deployment(d Deployment) *appsv1ac.DeploymentApplyConfiguration {
	labels := map[string]string{LabelName: d.Service, LabelVersion: d.Version, LabelManagedBy: "pave"}
	env := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName("PORT").WithValue(fmt.Sprint(ContainerPort)),
		corev1ac.EnvVar().WithName("PAVE_SERVICE").WithValue(d.Service),
		corev1ac.EnvVar().WithName("PAVE_VERSION").WithValue(d.Version),
		corev1ac.EnvVar().WithName("PAVE_CLUSTER").WithValue(k.o.Cluster.Name),
		corev1ac.EnvVar().WithName("PAVE_DATACENTER").WithValue(k.o.Datacenter),
	}
	keys := make([]string, 0, len(d.Env))
	for key := range d.Env {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		env = append(env, corev1ac.EnvVar().WithName(key).WithValue(d.Env[key]))
	}
	path := d.ReadinessPath
	if path == "" {
		path = DefaultReadinessPath
	}
	http := intstr.FromString("http")
	container := corev1ac.Container().
		WithName("app").
		WithImage(d.Image).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(ContainerPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(env...).
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(http))).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/livez").WithPort(http)))
	template := corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().WithContainers(container))
	spec := appsv1ac.DeploymentSpec().
		WithReplicas(int32(d.Replicas)).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{LabelName: d.Service, LabelVersion: d.Version})).
		WithTemplate(template)
	return appsv1ac.Deployment(objName(d.Service, d.Version), k.o.Namespace).WithLabels(labels).WithSpec(spec)
}

// service selects one version (version set) or every version of a service.
func (k *Kubernetes) service(name, service, version string) *corev1ac.ServiceApplyConfiguration {
	sel := map[string]string{LabelName: service}
	if version != "" {
		sel[LabelVersion] = version
	}
	return corev1ac.Service(name, k.o.Namespace).
		WithLabels(map[string]string{LabelName: service}).
		WithSpec(corev1ac.ServiceSpec().WithSelector(sel).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80).WithTargetPort(intstr.FromString("http")).WithProtocol(corev1.ProtocolTCP)))
}

// Remove deletes the version's Deployment and Service, and the service's
// Service once no version of it remains.
func (k *Kubernetes) Remove(ctx context.Context, service, version string) error {
	name := objName(service, version)
	err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil {
		return k.fail("delete", "deployment", name, err)
	}
	if err := k.o.Cluster.Kube.CoreV1().Services(k.o.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return k.fail("delete", "service", name, err)
	}
	left, err := k.list(ctx, service)
	if err != nil {
		return err
	}
	if len(left) == 0 {
		if err := k.o.Cluster.Kube.CoreV1().Services(k.o.Namespace).Delete(ctx, service, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return k.fail("delete", "service", service, err)
		}
	}
	return nil
}

// Status reads readiness from the Deployment's status as kubectl rollout
// status does: the controller saw the latest spec, and every desired
// replica is updated and available.
func (k *Kubernetes) Status(ctx context.Context, service, version string) (Status, error) {
	name := objName(service, version)
	d, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Status{}, k.fail("read", "deployment", name, err)
	}
	return k.status(d)
}

func (k *Kubernetes) status(d *appsv1.Deployment) (Status, error) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := Status{Cluster: k.o.Cluster.Name, Service: d.Labels[LabelName], Version: d.Labels[LabelVersion], Replicas: int(want),
		Deployed: d.CreationTimestamp.UTC(), Instances: []Instance{}, Endpoints: []string{}}
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		st.Artifact = cs[0].Image
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return st, fmt.Errorf("cluster %s: deployment %s/%s: %w: %s", k.o.Cluster.Name, d.Namespace, d.Name, ErrRolloutFailed, c.Message)
		}
	}
	fresh := d.Status.ObservedGeneration >= d.Generation
	if fresh && d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want {
		st.Ready = int(want)
	} else if fresh {
		st.Ready = int(min(d.Status.UpdatedReplicas, d.Status.AvailableReplicas))
	}
	return st, nil
}

// List reports every version Pave deployed in the namespace.
func (k *Kubernetes) List(ctx context.Context) ([]Status, error) { return k.list(ctx, "") }

func (k *Kubernetes) list(ctx context.Context, service string) ([]Status, error) {
	sel := LabelManagedBy + "=pave"
	if service != "" {
		sel += "," + LabelName + "=" + service
	}
	ds, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, k.fail("list", "deployments", "*", err)
	}
	out := make([]Status, 0, len(ds.Items))
	for i := range ds.Items {
		st, err := k.status(&ds.Items[i])
		if err != nil && !errors.Is(err, ErrRolloutFailed) {
			return nil, err
		}
		out = append(out, st)
	}
	SortStatuses(out)
	return out, nil
}
