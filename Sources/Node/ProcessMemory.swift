import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// This process's resident memory (`/proc/self/statm`) and glibc's heap accounting
/// (`malloc_info`: memory the allocator took from the OS, and how much of it is free inside its
/// arenas — free space it keeps is fragmentation, not a leak).
struct ProcessMemory: Sendable, Equatable {
    var residentBytes: UInt64 = 0
    /// Arena bytes plus mmapped chunks: what the allocator took from the OS.
    var mallocHeapBytes: UInt64 = 0
    var mallocInUseBytes: UInt64 = 0
    /// Free chunks inside the arenas: taken from the OS, not handed out.
    var mallocFreeBytes: UInt64 = 0
    var mallocMappedBytes: UInt64 = 0

    static func current() -> ProcessMemory {
        var m = ProcessMemory()
        m.residentBytes = residentPages() * UInt64(max(0, sysconf(Int32(_SC_PAGESIZE))))
        if let heap = GlibcHeap.read() {
            m.mallocMappedBytes = heap.mmapped
            m.mallocHeapBytes = heap.arenas + heap.mmapped
            m.mallocFreeBytes = heap.free
            m.mallocInUseBytes = heap.arenas + heap.mmapped - min(heap.free, heap.arenas)
        }
        return m
    }

    /// The second field of `/proc/self/statm`; 0 where there is no /proc.
    private static func residentPages() -> UInt64 {
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard n > 0 else { return 0 }
        let fields = buffer[..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 1 else { return 0 }
        return UInt64(String(decoding: fields[1], as: UTF8.self)) ?? 0
    }
}

/// glibc's `malloc_info` totals over all arenas. Swift's Glibc module does not import
/// `<malloc.h>`, so the function is looked up by name; nil where it does not exist (musl).
enum GlibcHeap {
    struct Totals: Equatable {
        /// Bytes the arenas hold from the OS (`<system type="current">`).
        var arenas: UInt64
        /// Free chunks in the arenas' bins (`<total type="fast">` + `<total type="rest">`).
        var free: UInt64
        /// Chunks served by mmap (`<total type="mmap">`).
        var mmapped: UInt64
    }

    private typealias MallocInfo = @convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32
    private static let mallocInfo: MallocInfo? = dlsym(nil, "malloc_info").map { unsafeBitCast($0, to: MallocInfo.self) }

    private typealias MallocTrim = @convention(c) (Int) -> Int32
    private static let mallocTrim: MallocTrim? = dlsym(nil, "malloc_trim").map { unsafeBitCast($0, to: MallocTrim.self) }

    /// `malloc_trim(0)`: returns the free pages of every arena to the OS. False where glibc's
    /// allocator is not the one in use or nothing could be returned.
    @discardableResult
    static func trim() -> Bool {
        guard let mallocTrim else { return false }
        return mallocTrim(0) != 0
    }

    static func read() -> Totals? {
        #if canImport(Glibc)
        guard let mallocInfo else { return nil }
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return nil }
        let status = mallocInfo(0, stream)
        fclose(stream)
        defer { free(buffer) }
        guard status == 0, let buffer else { return nil }
        return parse(String(cString: buffer))
        #else
        return nil
        #endif
    }

    /// The totals after the last `</heap>` (each heap lists its own before that).
    static func parse(_ xml: String) -> Totals? {
        let tail = xml.range(of: "</heap>", options: .backwards).map { String(xml[$0.upperBound...]) } ?? xml
        func size(_ element: String, _ type: String) -> UInt64? {
            guard let start = tail.range(of: "<\(element) type=\"\(type)\"") else { return nil }
            let rest = tail[start.upperBound...]
            guard let attribute = rest.range(of: "size=\"") else { return nil }
            return UInt64(rest[attribute.upperBound...].prefix { $0.isNumber })
        }
        guard let arenas = size("system", "current") else { return nil }
        return Totals(arenas: arenas, free: (size("total", "fast") ?? 0) + (size("total", "rest") ?? 0),
                      mmapped: size("total", "mmap") ?? 0)
    }
}
