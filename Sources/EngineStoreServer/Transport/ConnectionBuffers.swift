/// Bytes read from a peer and not yet parsed. Pure data; the loop thread owns it.
struct InputBuffer {
    private var bytes: [UInt8] = []
    private var start = 0

    var unparsed: ArraySlice<UInt8> { bytes[start...] }

    mutating func append<C: Collection>(_ more: C) where C.Element == UInt8 {
        compact()
        bytes.append(contentsOf: more)
    }

    /// Marks `n` bytes parsed. Only moves an index: a request's payload (a slice of this buffer) may
    /// still be on its way to the dispatcher, and releasing the storage now would copy it.
    mutating func consume(_ n: Int) {
        start += n
    }

    /// Releases parsed bytes: all of them once everything is parsed, else once 64 KiB have piled up.
    mutating func compact() {
        if start == bytes.count {
            guard start > 0 else { return }
            bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 16)
            start = 0
        } else if start >= 1 << 16 {
            bytes.removeFirst(start)
            start = 0
        }
    }
}

/// Reply bytes not yet taken by the kernel, as a queue of chunks: `chunks[chunkHead...]` are held,
/// `headOffset` bytes of the first of them are already sent. Chunks before `chunkHead` are empty
/// (released) until the array is compacted. Pure data: the loop sends `head` and reports progress.
struct OutputQueue {
    /// Small replies are appended to the last output chunk up to this size; a larger reply is a chunk
    /// of its own. A chunk is freed once it is fully sent.
    static let chunkBytes = 64 * 1024

    private(set) var chunks: [[UInt8]] = []
    private(set) var chunkHead = 0
    private(set) var headOffset = 0
    /// Bytes not yet sent (what the output cap compares with).
    private(set) var unsentBytes = 0
    /// Bytes held by the queue: `unsentBytes` plus the sent prefix of a partly sent chunk.
    /// This is what a lagging reader costs the server.
    private(set) var heldBytes = 0

    var isEmpty: Bool { unsentBytes == 0 }

    /// Queues a reply frame: coalesced into the last chunk when both are small, else a chunk of its own
    /// (the frame's own buffer, no copy).
    mutating func enqueue(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        if chunkHead < chunks.count, bytes.count < Self.chunkBytes / 4,
           chunks[chunks.count - 1].count + bytes.count <= Self.chunkBytes {
            chunks[chunks.count - 1].append(contentsOf: bytes)
        } else {
            chunks.append(bytes)
        }
        unsentBytes += bytes.count
        heldBytes += bytes.count
    }

    /// Calls `body` with the unsent part of the head chunk (one `send(2)`'s worth); returns its result.
    func withHead<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        chunks[chunkHead].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[headOffset...])) }
    }

    /// The kernel took `n` bytes: releases every chunk now fully sent; the queue's memory goes
    /// when it empties.
    mutating func didWrite(_ n: Int) {
        headOffset += n
        unsentBytes -= n
        while chunkHead < chunks.count && headOffset >= chunks[chunkHead].count {
            headOffset -= chunks[chunkHead].count
            heldBytes -= chunks[chunkHead].count
            chunks[chunkHead] = []
            chunkHead += 1
        }
        if chunkHead == chunks.count {
            chunks.removeAll(keepingCapacity: chunks.capacity <= 16)
            chunkHead = 0
            headOffset = 0
        } else if chunkHead >= 64 && chunkHead * 2 >= chunks.count {
            chunks.removeFirst(chunkHead)
            chunkHead = 0
        }
    }
}
