package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
	"syscall"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/kube"
)

// Labels Pave puts on what it runs in Kubernetes, as the scaffold's
// deploy/base manifests spell them. The pod label `version` is what the
// Istio router's subsets and the per-version Services select.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelVersion   = "version"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByPave  = "pave"
)

// The pod shape, kept consistent with deploy/base/deployment.yaml and
// service.yaml of the scaffold: kit listens on PORT (8080, port name http),
// answers /readyz and /healthz, and drains within its 20s shutdown timeout.
const (
	ContainerName   = "app"
	ContainerPort   = 8080
	ServicePort     = 80
	PortName        = "http"
	LivenessPath    = "/healthz"
	preStopSeconds  = 5
	terminationSecs = 30
)

// ErrRolloutFailed marks a Deployment Kubernetes gave up on
// (Progressing=False, reason ProgressDeadlineExceeded): the release fails
// on it with the condition's message as the reason.
var ErrRolloutFailed = errors.New("rollout failed")

// KubernetesOptions configure the Kubernetes target.
type KubernetesOptions struct {
	Cluster    *kube.Cluster // clients; Cluster.Name names the cluster in every error
	Namespace  string        // default "default"
	Datacenter string        // given to pods as PAVE_DATACENTER
	Log        *slog.Logger
}

// Kubernetes runs versions as Deployments in one namespace of one cluster:
// a Deployment SERVICE-VERSION per version (the stable one keeps its size
// until the release engine removes it after promotion), a Service
// SERVICE-VERSION per version for Gateway API backendRefs, and the Service
// SERVICE that Istio routes to. Everything is written by server-side apply
// with field manager "pave", so fields the team or other tools set stay
// theirs. The cluster is the state: nothing is kept in memory, so a
// restarted control plane sees what runs.
type Kubernetes struct {
	o   KubernetesOptions
	log *slog.Logger
}

var _ Target = (*Kubernetes)(nil)

// NewKubernetes returns the target over o.Cluster's clients.
func NewKubernetes(o KubernetesOptions) (*Kubernetes, error) {
	if o.Cluster == nil || o.Cluster.Kube == nil {
		return nil, errors.New("kubernetes target: no cluster clients (kube.New builds them from a kubeconfig)")
	}
	if o.Cluster.Name == "" {
		return nil, errors.New("kubernetes target: the cluster has no name; errors could not say which cluster failed")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if err := ValidName("namespace", o.Namespace); err != nil {
		return nil, fmt.Errorf("kubernetes target for cluster %s: %w", o.Cluster.Name, err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("cluster", o.Cluster.Name, "namespace", o.Namespace)
	return &Kubernetes{o: o, log: log}, nil
}

func objName(service, version string) string { return service + "-" + version }

// obj names an object as errors and logs do: "deployment NS/NAME".
func (k *Kubernetes) obj(kind, name string) string {
	return kind + " " + k.o.Namespace + "/" + name
}

// fail turns a client error into one naming the cluster and the object,
// saying what to do about the usual causes. A missing object wraps
// ErrNotFound, except on apply, where the missing thing is the namespace.
func (k *Kubernetes) fail(verb, obj string, err error) error {
	c := k.o.Cluster.Name
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("cluster %s: not authorised to %s %s: check the kubeconfig's user (the API server refused its credentials): %w", c, verb, obj, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("cluster %s: not authorised to %s %s: check the kubeconfig's user and its RBAC (Pave needs get, list, patch and delete on deployments and services in namespace %s): %w",
			c, verb, obj, k.o.Namespace, err)
	case apierrors.IsNotFound(err) && verb == "apply":
		return fmt.Errorf("cluster %s: apply %s: namespace %s does not exist? create it, or register the cluster with the namespace the service runs in: %w", c, obj, k.o.Namespace, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("cluster %s: %s: %w", c, obj, ErrNotFound)
	case unreachable(err):
		return fmt.Errorf("cluster %s unreachable: %s %s: %w (is the API server up? does the kubeconfig name the right server?)", c, verb, obj, err)
	}
	return fmt.Errorf("cluster %s: %s %s: %w", c, verb, obj, err)
}

// unreachable reports errors of the connection, not of the API server's
// answer: client-go wraps transport failures in *url.Error.
func unreachable(err error) bool {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

// Deploy applies the version's Deployment, its Service SERVICE-VERSION and
// the Service SERVICE. Applying the same d again changes nothing: the
// Deployment's generation stays, so no rollout starts.
func (k *Kubernetes) Deploy(ctx context.Context, d Deployment) error {
	if d.Image == "" {
		return invalid("image", "the kubernetes target runs images; pass --image REF (source and binary run on the local target)")
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if err := validImage(d.Image); err != nil {
		return err
	}
	// Server-side apply needs Force with a field manager to settle
	// conflicts, and Force only ever concerns the fields in the applied
	// configuration: the labels, replicas, selector, strategy and the app
	// container Pave sets below. If another manager set one of those to a
	// different value (kubectl scale, an edited image), Pave's value wins
	// and Pave becomes its only owner, which is what a release means.
	// Fields Pave does not send (annotations, other containers, resources,
	// a Service's sessionAffinity) are not touched, whoever owns them.
	opts := metav1.ApplyOptions{FieldManager: kube.FieldManager, Force: true}
	name := objName(d.Service, d.Version)
	if _, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).Apply(ctx, k.deployment(d), opts); err != nil {
		return k.fail("apply", k.obj("deployment", name), err)
	}
	for _, svc := range []*corev1ac.ServiceApplyConfiguration{k.versionService(d.Service, d.Version), k.sharedService(d.Service)} {
		if _, err := k.o.Cluster.Kube.CoreV1().Services(k.o.Namespace).Apply(ctx, svc, opts); err != nil {
			return k.fail("apply", k.obj("service", *svc.Name), err)
		}
	}
	k.log.Info("deployment applied", "service", d.Service, "version", d.Version, "image", d.Image, "replicas", d.Replicas)
	return nil
}

// validImage refuses what is certainly not an image reference; the
// registry judges the rest when the kubelet pulls.
func validImage(ref string) error {
	switch {
	case strings.ContainsFunc(ref, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return invalid("image", "%q contains white space or control characters; want REGISTRY/NAME:TAG or NAME@sha256:DIGEST", ref)
	case strings.Contains(ref, "://"):
		return invalid("image", "%q is a URL; an image reference has no scheme, e.g. registry.example/checkout:v42", ref)
	case len(ref) > 4096:
		return invalid("image", "reference of %d bytes is too long", len(ref))
	}
	return nil
}

func (k *Kubernetes) env(d Deployment) []*corev1ac.EnvVarApplyConfiguration {
	env := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName("PORT").WithValue(fmt.Sprint(ContainerPort)),
		corev1ac.EnvVar().WithName("PAVE_SERVICE").WithValue(d.Service),
		corev1ac.EnvVar().WithName("PAVE_VERSION").WithValue(d.Version),
		corev1ac.EnvVar().WithName("PAVE_CLUSTER").WithValue(k.o.Cluster.Name),
		corev1ac.EnvVar().WithName("PAVE_DATACENTER").WithValue(k.o.Datacenter),
	}
	// Sorted, so the same map always applies the same list: a different
	// order would be a different pod template, hence a rollout.
	keys := make([]string, 0, len(d.Env))
	for key := range d.Env {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		env = append(env, corev1ac.EnvVar().WithName(key).WithValue(d.Env[key]))
	}
	return env
}

// deployment builds the applied Deployment: what Pave owns, nothing more.
// Probes, pre-stop pause and hardening follow the scaffold's
// deploy/base/deployment.yaml, so a version released by Pave behaves like
// the stable one the team applied.
func (k *Kubernetes) deployment(d Deployment) *appsv1ac.DeploymentApplyConfiguration {
	labels := map[string]string{LabelName: d.Service, LabelVersion: d.Version, LabelManagedBy: ManagedByPave}
	port := intstr.FromString(PortName)
	get := func(path string) *corev1ac.HTTPGetActionApplyConfiguration {
		return corev1ac.HTTPGetAction().WithPath(path).WithPort(port)
	}
	container := corev1ac.Container().
		WithName(ContainerName).
		WithImage(d.Image).
		WithPorts(corev1ac.ContainerPort().WithName(PortName).WithContainerPort(ContainerPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(k.env(d)...).
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(get(d.readinessPath())).WithPeriodSeconds(5).WithFailureThreshold(2)).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(get(LivenessPath)).WithPeriodSeconds(10).WithFailureThreshold(3)).
		// Up to a minute to start before liveness may kill the pod.
		WithStartupProbe(corev1ac.Probe().WithHTTPGet(get(LivenessPath)).WithPeriodSeconds(2).WithFailureThreshold(30)).
		// Endpoints and the mesh stop sending before the process is told
		// to stop; kit then drains in-flight requests.
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().WithSleep(corev1ac.SleepAction().WithSeconds(preStopSeconds)))).
		// No readOnlyRootFilesystem, unlike the scaffold: kit's disk
		// spool needs a writable directory, which the team's manifests
		// provide and Pave cannot know.
		WithSecurityContext(corev1ac.SecurityContext().WithAllowPrivilegeEscalation(false).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")))
	pod := corev1ac.PodSpec().
		WithContainers(container).
		WithTerminationGracePeriodSeconds(terminationSecs).
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(corev1ac.PodSecurityContext().WithRunAsNonRoot(true).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))
	// A changed spec of the same version (new env, another image) rolls
	// without losing capacity, as the scaffold's stable Deployment does.
	maxSurge, maxUnavailable := intstr.FromString("25%"), intstr.FromInt32(0)
	spec := appsv1ac.DeploymentSpec().
		WithReplicas(int32(d.Replicas)).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{LabelName: d.Service, LabelVersion: d.Version})).
		WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxSurge(maxSurge).WithMaxUnavailable(maxUnavailable))).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(pod))
	return appsv1ac.Deployment(objName(d.Service, d.Version), k.o.Namespace).WithLabels(labels).WithSpec(spec)
}

func servicePort() *corev1ac.ServicePortApplyConfiguration {
	return corev1ac.ServicePort().WithName(PortName).WithPort(ServicePort).
		WithTargetPort(intstr.FromString(PortName)).WithProtocol(corev1.ProtocolTCP)
}

// versionService selects one version's pods: the backendRef of the Gateway
// API router. It is Pave's alone.
func (k *Kubernetes) versionService(service, version string) *corev1ac.ServiceApplyConfiguration {
	labels := map[string]string{LabelName: service, LabelVersion: version, LabelManagedBy: ManagedByPave}
	return corev1ac.Service(objName(service, version), k.o.Namespace).WithLabels(labels).
		WithSpec(corev1ac.ServiceSpec().WithSelector(map[string]string{LabelName: service, LabelVersion: version}).WithPorts(servicePort()))
}

// sharedService selects every version's pods: the host Istio routes to.
// It is the scaffold's deploy/base/service.yaml, usually applied by the
// team too, so it carries no managed-by label: applying the same values
// makes Pave a co-owner, never the only one.
func (k *Kubernetes) sharedService(service string) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(service, k.o.Namespace).WithLabels(map[string]string{LabelName: service}).
		WithSpec(corev1ac.ServiceSpec().WithSelector(map[string]string{LabelName: service}).WithPorts(servicePort()))
}

// Remove deletes the version's Deployment (its pods go with it) and its
// Service, and the Service SERVICE once no Deployment of the service
// remains and no one but Pave wrote to it. It returns an error wrapping
// ErrNotFound when neither object existed.
func (k *Kubernetes) Remove(ctx context.Context, service, version string) error {
	if err := errors.Join(ValidName("service", service), ValidName("version", version)); err != nil {
		return err
	}
	name := objName(service, version)
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	depErr := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).Delete(ctx, name, del)
	if depErr != nil && !apierrors.IsNotFound(depErr) {
		return k.fail("delete", k.obj("deployment", name), depErr)
	}
	// The Service goes even when the Deployment was gone already: a deploy
	// interrupted between the two applies leaves it behind.
	svcErr := k.o.Cluster.Kube.CoreV1().Services(k.o.Namespace).Delete(ctx, name, del)
	if svcErr != nil && !apierrors.IsNotFound(svcErr) {
		return k.fail("delete", k.obj("service", name), svcErr)
	}
	if err := k.removeShared(ctx, service); err != nil {
		return err
	}
	if depErr != nil && svcErr != nil {
		return k.fail("delete", k.obj("deployment", name), depErr)
	}
	k.log.Info("deployment removed", "service", service, "version", version)
	return nil
}

// removeShared deletes the Service SERVICE when it is Pave's alone and no
// Deployment of the service (Pave's or the team's) is left to select. The
// delete is conditional on the resourceVersion read, so a Service someone
// changed meanwhile is checked again rather than deleted.
func (k *Kubernetes) removeShared(ctx context.Context, service string) error {
	svcs := k.o.Cluster.Kube.CoreV1().Services(k.o.Namespace)
	obj := k.obj("service", service)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := svcs.Get(ctx, service, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return k.fail("read", obj, err)
		}
		if !onlyPave(svc.ManagedFields) {
			return nil
		}
		left, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelName + "=" + service, Limit: 1})
		if err != nil {
			return k.fail("list", k.obj("deployments", "*"), err)
		}
		if len(left.Items) > 0 {
			return nil
		}
		err = svcs.Delete(ctx, service, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &svc.UID, ResourceVersion: &svc.ResourceVersion}})
		switch {
		case err == nil || apierrors.IsNotFound(err):
			k.log.Info("service removed: no version of it is left", "service", service)
			return nil
		case apierrors.IsConflict(err):
			return err // retried with what is there now
		}
		return k.fail("delete", obj, err)
	})
}

// onlyPave reports whether every field of an object was written by Pave
// (an object with no field managers recorded is not known to be Pave's).
func onlyPave(mf []metav1.ManagedFieldsEntry) bool {
	for _, m := range mf {
		if m.Manager != kube.FieldManager {
			return false
		}
	}
	return len(mf) > 0
}

// Status reads one version's Deployment. Readiness is read as kubectl
// rollout status reads it; a rollout the Deployment controller gave up on
// returns the status with an error wrapping ErrRolloutFailed.
func (k *Kubernetes) Status(ctx context.Context, service, version string) (Status, error) {
	if err := errors.Join(ValidName("service", service), ValidName("version", version)); err != nil {
		return Status{}, err
	}
	name := objName(service, version)
	d, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Status{}, k.fail("read", k.obj("deployment", name), err)
	}
	return k.status(d, service, version)
}

// status derives a version's state from its Deployment. The counts are
// only believed once the controller has observed the latest generation:
// before that they describe the previous spec. Of the available replicas,
// those still of an older template (status.replicas - updatedReplicas) do
// not count as ready, so the version is ready only once every desired
// replica runs the current spec and nothing older is left.
func (k *Kubernetes) status(d *appsv1.Deployment, service, version string) (Status, error) {
	want := int32(1) // the API server's default
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := Status{Cluster: k.o.Cluster.Name, Service: service, Version: version, Replicas: int(want),
		Deployed: d.CreationTimestamp.UTC(), Instances: []Instance{}, Endpoints: []string{}}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == ContainerName || st.Artifact == "" {
			st.Artifact = c.Image
		}
	}
	if d.Status.ObservedGeneration < d.Generation {
		return st, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return st, fmt.Errorf("cluster %s: deployment %s/%s: %w: %s", k.o.Cluster.Name, d.Namespace, d.Name, ErrRolloutFailed, c.Message)
		}
	}
	old := max(d.Status.Replicas-d.Status.UpdatedReplicas, 0)
	ready := max(min(d.Status.UpdatedReplicas, d.Status.AvailableReplicas-old, want), 0)
	st.Ready = int(ready)
	return st, nil
}

// List reports every version Pave deployed in the namespace (Deployments
// labelled app.kubernetes.io/managed-by=pave), ordered by service and
// version. A failed rollout is listed with what is ready, not as an error.
func (k *Kubernetes) List(ctx context.Context) ([]Status, error) {
	ds, err := k.o.Cluster.Kube.AppsV1().Deployments(k.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedByPave})
	if err != nil {
		return nil, k.fail("list", k.obj("deployments", "*"), err)
	}
	out := make([]Status, 0, len(ds.Items))
	for i := range ds.Items {
		d := &ds.Items[i]
		service, version := d.Labels[LabelName], d.Labels[LabelVersion]
		if service == "" || version == "" || d.Name != objName(service, version) {
			k.log.Warn("deployment labelled managed-by=pave is not a version Pave deployed; skipped",
				"deployment", d.Name, "labels", d.Labels)
			continue
		}
		st, err := k.status(d, service, version)
		if err != nil && !errors.Is(err, ErrRolloutFailed) {
			return nil, err
		}
		out = append(out, st)
	}
	SortStatuses(out)
	return out, nil
}
