# The CNI node's names, shared by tests/lab/cni-up.sh and cni-down.sh (sourced after lib.sh).
CNI_BIN=/usr/lib/cni
CNI_NET=vtcni
CNI_BRIDGE=cni0
CNI_SUBNET=10.244.77.0/24
CNI_GATEWAY=10.244.77.1
CNI_PODS=(cni19-pod1 cni19-pod2)
CNI_CACHE=/var/lib/cni/results
CNI_ENV="$STATE_DIR/cni.env"
VX_DEV=vtcni.1
VX_UNDERLAY=vtcni-ul0
VX_NODE=cni19-node2
GUARD_COMMENT="vethtrace-lab cni0 uplink guard"
ACCEPT_COMMENT="vethtrace-lab cni0 forwarding"
