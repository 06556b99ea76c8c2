// Whole-file I/O for checkpoints, configs and corpora.
//
// write_file_atomic writes `path.tmp.<pid>`, flushes and fsyncs it, then renames it over `path`
// (atomic on POSIX), so a crash leaves either the old file or the new one, never half of one.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace monet {

// The bytes of a regular file; monet::Error naming the path if it is missing or unreadable.
std::string read_file(const std::filesystem::path& path);

// A regular file mapped read-only into memory (mmap): its bytes without a copy, paged in from the
// page cache as they are read, so a multi-gigabyte checkpoint costs no second buffer. Errors as
// read_file's. Not copyable; the view dies with it.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Replace `path` with `bytes` atomically. The folder must exist. The temporary file is removed if
// anything fails before the rename.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace monet
