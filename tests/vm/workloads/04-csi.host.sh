# The CSI node plugin runs inside the guest and reaches the host's dataset server through its
# admin API, so this workload's server listens for admin calls on TCP (with a bearer token).
ADMIN_TCP=1
