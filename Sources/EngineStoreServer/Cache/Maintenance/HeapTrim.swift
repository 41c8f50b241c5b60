import CLinuxShims

/// Bursts (relay rebuilds, big batches) leave freed pages in glibc's arenas; returning them keeps
/// RSS following the working set.
struct HeapTrim {
    func run() { es_trim_heap() }
}
