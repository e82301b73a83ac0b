# Two servers on one store: the guest mounts "node" (a catalog reader), the catalog owner
# "owner" owns the dataset; the workload kills the owner under a writer.
CLUSTER=1
