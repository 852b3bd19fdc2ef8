#!/usr/bin/env bash
# Renders every kustomize overlay and scores it with kube-score; exits
# non-zero on any warning or critical finding.
#
#   deploy/check.sh            (needs kubectl and kube-score on PATH)
#
# Install kube-score with:
#   go install github.com/zegl/kube-score/cmd/kube-score@v1.20.0
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for tool in kubectl kube-score; do
	if ! command -v "$tool" >/dev/null; then
		echo "check.sh: $tool is not on PATH" >&2
		exit 2
	fi
done

flags=(
	--exit-one-on-warning
	# Optional check worth having: every pod runs with a seccomp profile.
	--enable-optional-test container-seccomp-profile
	# Images are pinned by version tag or digest, so Always only makes every
	# pod start (and every HPA scale-out) depend on the registry answering.
	--ignore-test container-image-pull-policy
	# Spreading over nodes is done by topologySpreadConstraints on
	# kubernetes.io/hostname (ScheduleAnyway); a required anti-affinity would
	# cap the HPA at the node count, a preferred one repeats the constraint.
	--ignore-test deployment-has-host-podantiaffinity
	--ignore-test statefulset-has-host-podantiaffinity
)
# Exceptions for one object sit on it as a kube-score/ignore annotation,
# with the reason beside it (only the dev MySQL has one).

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

status=0
for overlay in "$here"/k8s/overlays/*/; do
	name="$(basename "$overlay")"
	kubectl kustomize "$overlay" >"$rendered/$name.yaml"
	if kube-score score "${flags[@]}" "$rendered/$name.yaml"; then
		echo "check.sh: overlay $name: kube-score passed"
	else
		echo "check.sh: overlay $name: kube-score FAILED" >&2
		status=1
	fi
done
exit "$status"
