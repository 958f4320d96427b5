// jemalloc's settings for brnode, compiled into the programs that run a node
// (brnode, brnode_bench) when meson finds jemalloc (option `allocator`, see
// meson_options.txt). jemalloc reads this symbol at its first allocation;
// MALLOC_CONF in the environment still overrides it.
//
// Why jemalloc: glibc's malloc and free were ~12% of a replicating node's
// CPU and ~20% of the edge's (perf). With jemalloc the replication
// benchmark's nodes spend ~20% less CPU per replicated write (docs/NOTES.md,
// eleventh session), and long-lived processes fragment less.
// Why two arenas: jemalloc's default is four per core, each holding its
// own dirty pages; a node's allocations come from a handful of busy threads,
// two arenas measured as fast here, and an idle node stays ~1 MB above glibc
// instead of more.

extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf = "narenas:2";
}
