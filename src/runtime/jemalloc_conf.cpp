// jemalloc's settings for brnode, compiled into the programs that run a node
// (brnode, brnode_bench) when meson finds jemalloc (option `allocator`, see
// meson_options.txt). jemalloc reads this symbol at its first allocation;
// MALLOC_CONF in the environment still overrides it.
//
// Why jemalloc: glibc's malloc and free were ~12% of a replicating node's
// CPU and ~20% of the edge's (perf). Built with jemalloc against without,
// alternating in one sitting (docs/NOTES.md, eleventh session), the
// replication benchmark's nodes spent ~9% less CPU per replicated write and
// the edge accepted ~6% more webhooks/s; an idle node holds ~2 MB more.
// Why two arenas: jemalloc's default is four per core, each holding its own
// dirty pages; a node's allocations come from a handful of busy threads,
// and two measured as fast as the default here.

extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf = "narenas:2";
}
