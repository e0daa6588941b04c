#!/usr/bin/env bash
# Render the manifests of one distributed run: N segments of a plan on an
# Indexed Job, their shared start time and run id, and the merge Job.
#
#   deploy/k8s/render.sh -n 4 -i registry.example.com/periscope:0.1 \
#     -p deploy/k8s/plan.yaml > run.yaml && kubectl apply -f run.yaml
#
# Options (defaults in brackets):
#   -n N        segments, one pod each [4]
#   -p FILE     the plan, a periscope scenario file [deploy/k8s/plan.yaml]
#   -i IMAGE    the periscope image (see the Dockerfile) [periscope:latest]
#   -s SECONDS  the start barrier: how long after rendering the load starts;
#               leave room for scheduling and image pulls [120]
#   -r RUN_ID   the run id [a new random one]
#   -d SECONDS  the most a segment may run, start wait included [3600]
#   -c CPU      CPU requested per segment [2]
#   -N NAME     the name of the Jobs, ConfigMap and volume [periscope]
#   -a K=V      keep the segments off the nodes running pods labelled K=V
#               (the system under test), so that they never share its CPU
#   -S K=V[,…]  schedule the segments on nodes with these labels
# -d defaults to TEMPO_PERF_JOB_TIMEOUT when it is set (30m, 1h, or seconds).
# When a periscope binary is found ($PERISCOPE, else on PATH), the plan is
# checked first with `periscope run PLAN --segments N --dry-run`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SEGMENTS=4 PLAN=$here/plan.yaml IMAGE=periscope:latest LEAD_S=120 RUN_ID=''
DEADLINE_S=3600 CPU=2 NAME=periscope SUT='' NODES=''
die() { echo "render.sh: $*" >&2; exit 1; }
# 30m, 1h, 90s or 600: whole seconds.
seconds() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
if [ -n "${TEMPO_PERF_JOB_TIMEOUT:-}" ]; then
  [[ $TEMPO_PERF_JOB_TIMEOUT =~ ^[0-9]+[hms]?$ ]] || die "TEMPO_PERF_JOB_TIMEOUT=$TEMPO_PERF_JOB_TIMEOUT: give e.g. 30m, 1h or 3600"
  DEADLINE_S=$(seconds "$TEMPO_PERF_JOB_TIMEOUT")
fi
while getopts "n:p:i:s:r:d:c:N:a:S:h" opt; do
  case $opt in
    n) SEGMENTS=$OPTARG ;;
    p) PLAN=$OPTARG ;;
    i) IMAGE=$OPTARG ;;
    s) LEAD_S=$OPTARG ;;
    r) RUN_ID=$OPTARG ;;
    d) DEADLINE_S=$OPTARG ;;
    c) CPU=$OPTARG ;;
    N) NAME=$OPTARG ;;
    a) SUT=$OPTARG ;;
    S) NODES=$OPTARG ;;
    h) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: see $0 -h" ;;
  esac
done
[[ $SEGMENTS =~ ^[1-9][0-9]*$ ]] || die "-n $SEGMENTS: give a whole number of segments, at least 1"
[[ $LEAD_S =~ ^[0-9]+$ ]] || die "-s $LEAD_S: give whole seconds"
[[ $DEADLINE_S =~ ^[1-9][0-9]*$ ]] || die "-d $DEADLINE_S: give whole seconds"
[[ $NAME =~ ^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$ ]] || die "-N $NAME: use lowercase letters, digits and '-' (a Kubernetes name)"
[ -r "$PLAN" ] || die "-p $PLAN: cannot read the plan"
command -v envsubst >/dev/null || die "envsubst is missing (Debian/Ubuntu: gettext-base)"
if [ -z "$RUN_ID" ]; then
  RUN_ID=$(LC_ALL=C tr -dc 'a-z0-9' </dev/urandom | head -c 12 || true)
fi
[[ $RUN_ID =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "-r $RUN_ID: use 1 to 64 letters, digits, '.', '_' or '-'"
START_AT=$(date -u -d "+$LEAD_S seconds" +%Y-%m-%dT%H:%M:%SZ)
periscope=${PERISCOPE:-$(command -v periscope || true)}
if [ -n "$periscope" ]; then
  JOB_COMPLETION_INDEX=0 "$periscope" run "$PLAN" --segments "$SEGMENTS" \
    --run-id "$RUN_ID" --start-at "$START_AT" --dry-run >/dev/null \
    || die "the plan $PLAN does not run as $SEGMENTS segments (the error is above)"
fi
# The merge waits as long as the segments may run.
WAIT_S=$DEADLINE_S
MERGE_INPUTS=$(for ((i = 0; i < SEGMENTS; i++)); do
  if ((i > 0)); then printf ', '; fi
  printf '"/results/%s-segment-%d.json"' "$RUN_ID" "$i"
done)
PLAN_INDENTED=$(sed 's/^/    /' "$PLAN")
kv='^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*$'
SUT_ANTI_AFFINITY=''
if [ -n "$SUT" ]; then
  [[ $SUT =~ $kv ]] || die "-a $SUT: give one label as KEY=VALUE (the pods of the system under test)"
  SUT_ANTI_AFFINITY="
          requiredDuringSchedulingIgnoredDuringExecution:
            - topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels:
                  \"${SUT%%=*}\": \"${SUT#*=}\""
fi
NODE_SELECTOR=''
if [ -n "$NODES" ]; then
  NODE_SELECTOR="
      nodeSelector:"
  IFS=, read -r -a pairs <<<"$NODES"
  for p in "${pairs[@]}"; do
    [[ $p =~ $kv ]] || die "-S $NODES: give KEY=VALUE labels separated by commas"
    NODE_SELECTOR+="
        \"${p%%=*}\": \"${p#*=}\""
  done
fi
export NAME SEGMENTS IMAGE RUN_ID START_AT DEADLINE_S WAIT_S CPU MERGE_INPUTS PLAN_INDENTED SUT_ANTI_AFFINITY NODE_SELECTOR
vars='${NAME} ${SEGMENTS} ${IMAGE} ${RUN_ID} ${START_AT} ${DEADLINE_S} ${WAIT_S} ${CPU} ${MERGE_INPUTS} ${PLAN_INDENTED} ${SUT_ANTI_AFFINITY} ${NODE_SELECTOR}'
echo "# periscope run $RUN_ID: $SEGMENTS segments of $(basename "$PLAN") from $START_AT"
first=1
for f in configmap.yaml results-pvc.yaml job.yaml merge-job.yaml; do
  ((first)) || echo '---'
  first=0
  envsubst "$vars" <"$here/$f"
done
echo "render.sh: run $RUN_ID, $SEGMENTS segments, starting at $START_AT" >&2
