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

// Replace `path` with `bytes` atomically. The folder must exist. The temporary file is removed if
// anything fails before the rename.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace monet
