package kubetest

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Verdict is the state PlayDeployments gives one Deployment.
type Verdict int

const (
	// Ready: every replica updated and available, as after a good rollout.
	Ready Verdict = iota
	// Unready: replicas updated but none available, still progressing (a
	// crash-looping or slow-starting pod).
	Unready
	// Failed: Progressing=False with reason ProgressDeadlineExceeded, as
	// the controller reports once spec.progressDeadlineSeconds has passed.
	Failed
	// Untouched: no status written at all, as if no controller ran.
	Untouched
)

func (v Verdict) String() string {
	switch v {
	case Ready:
		return "Ready"
	case Unready:
		return "Unready"
	case Failed:
		return "Failed"
	case Untouched:
		return "Untouched"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// PlayOption decides the verdict for one Deployment. It is called on every
// pass, so a test may change its mind mid-test (a deployment that starts
// failing). With several options the first verdict other than Ready wins;
// with none every Deployment becomes Ready.
type PlayOption func(*appsv1.Deployment) Verdict

// PlayDeployments plays the Deployment controller until ctx ends: every
// Deployment whose status is stale (observedGeneration behind, or counts
// and conditions not what its verdict calls for) gets the status the
// controller would write. Run it on its own goroutine; it survives a
// stopped cluster (it keeps retrying until ctx ends).
func (c *Cluster) PlayDeployments(ctx context.Context, opts ...PlayOption) {
	// A client of its own, so its polling does not share a rate limiter
	// with the test's clients.
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(c.Config))
	if err != nil {
		panic(fmt.Sprintf("kubetest: cluster %s: %v", c.Name, err))
	}
	// Polling rather than watching: a PlayOption may change its verdict
	// without the Deployment changing, and a watch would not notice.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		playOnce(ctx, cs, opts)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func playOnce(ctx context.Context, cs kubernetes.Interface, opts []PlayOption) {
	list, err := cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return // a stopped cluster, or ctx ended: try again next pass
	}
	now := metav1.Now()
	for i := range list.Items {
		d := &list.Items[i]
		v := verdict(d, opts)
		if v == Untouched {
			continue
		}
		want := status(d, v, now)
		if sameStatus(d.Status, want) {
			continue
		}
		d.Status = want
		// A conflict (someone changed the spec meanwhile) is retried on
		// the next pass with the new generation, as the controller would;
		// the field manager is the real controller's, so managedFields
		// look as they do on a real cluster.
		_, _ = cs.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{FieldManager: "kube-controller-manager"})
	}
}

func verdict(d *appsv1.Deployment, opts []PlayOption) Verdict {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if v := o(d); v != Ready {
			return v
		}
	}
	return Ready
}

// status is the status the Deployment controller would write for d in the
// state v, at time now; conditions whose status does not change keep their
// transition time, as the controller's do.
func status(d *appsv1.Deployment, v Verdict, now metav1.Time) appsv1.DeploymentStatus {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	rs := fmt.Sprintf("ReplicaSet %q", d.Name+"-"+fmt.Sprint(d.Generation))
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want}
	var available, progressing appsv1.DeploymentCondition
	switch v {
	case Ready:
		st.ReadyReplicas, st.AvailableReplicas = want, want
		available = cond(appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability.")
		progressing = cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable", rs+" has successfully progressed.")
	case Failed:
		st.UnavailableReplicas = want
		available = cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
		progressing = cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", rs+" has timed out progressing.")
	default: // Unready
		st.UnavailableReplicas = want
		available = cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
		progressing = cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", rs+" is progressing.")
	}
	for _, c := range []*appsv1.DeploymentCondition{&available, &progressing} {
		c.LastUpdateTime, c.LastTransitionTime = now, now
		for _, old := range d.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	st.Conditions = []appsv1.DeploymentCondition{available, progressing}
	return st
}

func cond(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg}
}

// sameStatus compares all but the timestamps, which differ on every pass.
func sameStatus(a, b appsv1.DeploymentStatus) bool {
	strip := func(s appsv1.DeploymentStatus) appsv1.DeploymentStatus {
		s.Conditions = append([]appsv1.DeploymentCondition(nil), s.Conditions...)
		for i := range s.Conditions {
			s.Conditions[i].LastUpdateTime, s.Conditions[i].LastTransitionTime = metav1.Time{}, metav1.Time{}
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}
