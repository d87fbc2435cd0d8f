// A whole file mapped read-only, unmapped when the last reference goes: what the safetensors and GGUF
// readers parse in place.
import Foundation

final class MappedFile: @unchecked Sendable {
  let base: UnsafeRawPointer
  let length: Int

  /// Maps `path`; a file shorter than `minimumLength` bytes is refused with `tooShort(length)`.
  init(path: String, minimumLength: Int, tooShort: (Int) -> Error) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw CheckpointError.unreadable(path: path, reason: "cannot open (\(String(cString: strerror(errno))))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw CheckpointError.unreadable(path: path, reason: "cannot stat") }
    length = Int(st.st_size)
    guard length >= minimumLength else { throw tooShort(length) }
    guard let m = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
      throw CheckpointError.unreadable(path: path, reason: "mmap failed")
    }
    base = UnsafeRawPointer(m)
  }

  /// Drops the whole pages inside bytes [offset, offset + count) from this process's memory (they are
  /// read again from the file if touched): for data that was copied elsewhere.
  func release(offset: Int, count: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (offset + page - 1) / page * page, end = (offset + count) / page * page
    guard end > start else { return }
    _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
  }

  deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }
}
