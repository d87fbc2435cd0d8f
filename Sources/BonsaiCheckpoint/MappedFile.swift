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

  deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }
}
