#!/bin/bash
# A stand-in for kindnetd, kind's CNI daemon, whose image no registry here serves (e2e/kind/README.md). It runs under
# kind's own kindnet DaemonSet manifest (hostNetwork, NET_ADMIN, the node's /etc/cni/net.d mounted) and does the
# three things kind's clusters need of kindnetd, with the real CNI plugins (ptp, host-local, portmap):
#   1. writes /etc/cni/net.d/10-kindnet.conflist: ptp + host-local over this node's podCIDR, portmap;
#   2. routes every other node's podCIDR via that node's InternalIP;
#   3. masquerades traffic from pods to outside the pod subnet (POD_SUBNET).
# It reads the nodes from the API with the pod's ServiceAccount (kind's manifest grants list on nodes), every 5 s.
set -u
API="https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}"
SA=/var/run/secrets/kubernetes.io/serviceaccount
CONFLIST=/etc/cni/net.d/10-kindnet.conflist

log() { echo "kindnetd-stand-in: $*"; }

# The iptables backend the node uses (kube-proxy's choice): the one that already holds rules.
iptables_cmd() {
  if [ "$(iptables-legacy-save 2>/dev/null | grep -c '^-')" -gt "$(iptables-nft-save 2>/dev/null | grep -c '^-')" ]; then
    echo iptables-legacy
  else
    echo iptables-nft
  fi
}

write_conflist() { # $1: this node's podCIDR
  local want
  want=$(jq -n --arg subnet "$1" '{cniVersion: "0.3.1", name: "kindnet", plugins: [
    {type: "ptp", ipMasq: false, mtu: 1500,
     ipam: {type: "host-local", dataDir: "/run/cni-ipam-state", routes: [{dst: "0.0.0.0/0"}],
            ranges: [[{subnet: $subnet}]]}},
    {type: "portmap", capabilities: {portMappings: true}}]}')
  if [ "$(cat "$CONFLIST" 2>/dev/null)" != "$want" ]; then
    echo "$want" >"$CONFLIST.tmp" && mv "$CONFLIST.tmp" "$CONFLIST"
    log "wrote $CONFLIST for $1"
  fi
}

masquerade() {
  local ipt
  ipt=$(iptables_cmd)
  "$ipt" -t nat -C POSTROUTING -s "$POD_SUBNET" ! -d "$POD_SUBNET" -j MASQUERADE 2>/dev/null \
    || { "$ipt" -t nat -A POSTROUTING -s "$POD_SUBNET" ! -d "$POD_SUBNET" -j MASQUERADE && log "masquerading $POD_SUBNET ($ipt)"; }
}

sync_once() {
  local nodes
  nodes=$(curl -fsS --max-time 5 --cacert "$SA/ca.crt" -H "Authorization: Bearer $(cat "$SA/token")" "$API/api/v1/nodes") || return 1
  echo "$nodes" | jq -r '.items[] | [(.status.addresses[] | select(.type == "InternalIP") | .address), (.spec.podCIDR // "")] | @tsv' |
    while IFS=$'\t' read -r ip cidr; do
      [ -n "$cidr" ] || continue
      if [ "$ip" = "$HOST_IP" ]; then
        write_conflist "$cidr"
      else
        ip route replace "$cidr" via "$ip" 2>/dev/null || true
      fi
    done
  masquerade
}

log "started on $HOST_IP (pod subnet $POD_SUBNET)"
while true; do
  sync_once || log "could not read the nodes; retrying"
  sleep 5
done
