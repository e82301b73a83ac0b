# Host side of the POSIX workload: the tree tarball, its checksums and its manifest, generated
# deterministically (cached; key = the generator's content).
host_prepare() { # DATA_DIR CACHE_DIR
    local gen key dir
    gen=$VM_DIR/lib/gen-tree.py
    key=$(sha256sum "$gen" | cut -c1-16)
    dir=$2/tree-$key
    if [ ! -s "$dir/tree.manifest" ]; then
        rm -rf "$2"/tree-*
        mkdir -p "$dir"
        python3 "$gen" "$dir"
    fi
    ln "$dir"/tree.tar "$dir"/tree.sha256 "$dir"/tree.manifest "$1"/ 2>/dev/null ||
        cp "$dir"/tree.tar "$dir"/tree.sha256 "$dir"/tree.manifest "$1"/
}
