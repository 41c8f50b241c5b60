/// One client connection's state. Owned by the event loop thread; never shared.
final class Connection {
    struct Pending {
        let token: UInt64
        let deadlineNanos: UInt64
        let method: UInt16
        /// Output bytes set aside for the reply (the loop's estimate for the method).
        let reserve: Int
    }

    /// Small replies are appended to the last output chunk up to this size; a larger reply is a chunk
    /// of its own. A chunk is freed once it is fully sent.
    static let chunkBytes = 64 * 1024

    let id: UInt64
    let fd: Int32
    var input: [UInt8] = []
    var inputStart = 0
    /// Reply bytes not yet taken by the kernel, as a queue of chunks: `chunks[chunkHead...]` are held,
    /// `headOffset` bytes of the first of them are already sent. Chunks before `chunkHead` are empty
    /// (released) until the array is compacted.
    private(set) var chunks: [[UInt8]] = []
    private(set) var chunkHead = 0
    private(set) var headOffset = 0
    /// Bytes not yet sent (what the output cap compares with).
    private(set) var outputBytes = 0
    /// Bytes held by the output queue: `outputBytes` plus the sent prefix of a partly sent chunk.
    /// This is what a lagging reader costs the server.
    private(set) var heldOutputBytes = 0
    var handshaken = false
    /// Requests sent to workers and not yet answered, by request id.
    var pending: [UInt32: Pending] = [:]
    /// Sum of `reserve` over `pending`: replies on their way, counted against the output cap.
    var reservedOutput = 0
    /// Set after a protocol violation: answer what is queued, then close.
    var closeAfterFlush = false
    /// Current epoll interest (EPOLLIN / EPOLLOUT bits).
    var interest: UInt32 = 0
    var dirty = false
    let openedNanos: UInt64
    /// The last byte read from or written to the peer.
    var lastActivityNanos: UInt64
    /// When the oldest incomplete frame in `input` began arriving (0 = none pending).
    var partialSinceNanos: UInt64 = 0
    /// Since when output has been pending without the kernel taking a byte (0 = no output pending,
    /// or the last flush made progress and the clock restarted then).
    var writeStalledSinceNanos: UInt64 = 0

    init(id: UInt64, fd: Int32, now: UInt64) {
        self.id = id
        self.fd = fd
        self.openedNanos = now
        self.lastActivityNanos = now
    }

    var bufferedInput: ArraySlice<UInt8> { input[inputStart...] }
    var hasOutput: Bool { outputBytes > 0 }

    func consumeInput(_ n: Int) {
        inputStart += n
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 1 << 16)
            inputStart = 0
        } else if inputStart >= 1 << 16 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    /// Queues a reply frame: coalesced into the last chunk when both are small, else a chunk of its own
    /// (the frame's own buffer, no copy).
    func enqueue(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        if chunkHead < chunks.count, bytes.count < Self.chunkBytes / 4,
           chunks[chunks.count - 1].count + bytes.count <= Self.chunkBytes {
            chunks[chunks.count - 1].append(contentsOf: bytes)
        } else {
            chunks.append(bytes)
        }
        outputBytes += bytes.count
        heldOutputBytes += bytes.count
    }

    /// Sends from the head chunk: the result of one `send(2)` (MSG_NOSIGNAL).
    func sendHead() -> Int {
        chunks[chunkHead].withUnsafeBytes { raw in
            send(fd, raw.baseAddress! + headOffset, raw.count - headOffset, Int32(MSG_NOSIGNAL))
        }
    }

    /// The kernel took `n` bytes: releases every chunk now fully sent; the queue's memory goes
    /// when it empties.
    func didWrite(_ n: Int) {
        headOffset += n
        outputBytes -= n
        while chunkHead < chunks.count && headOffset >= chunks[chunkHead].count {
            headOffset -= chunks[chunkHead].count
            heldOutputBytes -= chunks[chunkHead].count
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

import Glibc
