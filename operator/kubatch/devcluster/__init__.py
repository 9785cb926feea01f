"""The local development cluster: a real control plane built from Go modules, on 127.0.0.1.

`hack/cluster/build.sh` compiles etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kubectl, kwok and helm into a cache outside the repository; this package starts, checks and stops
them (`python -m kubatch.devcluster up|down|status`) and creates simulated kwok nodes.
"""
