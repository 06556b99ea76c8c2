#include "util/fileio.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace monet {
namespace {

namespace fs = std::filesystem;

// A POSIX file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string errno_str() {
  return std::strerror(errno);
}

void write_all(int fd, std::string_view bytes, const fs::path& tmp) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    MONET_CHECK(n > 0, "cannot write '{}': {}", tmp.string(), errno_str());
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Best effort: make the rename itself durable by syncing the folder that holds the file.
void sync_folder(const fs::path& folder) {
  Fd dir(::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY));
  if (dir.get() >= 0) ::fsync(dir.get());
}

}  // namespace

std::string read_file(const fs::path& path) {
  std::error_code ec;
  MONET_CHECK(fs::exists(path, ec), "cannot read '{}': no such file", path.string());
  MONET_CHECK(!fs::is_directory(path, ec), "cannot read '{}': it is a folder", path.string());
  std::ifstream in(path, std::ios::binary);
  MONET_CHECK(in.good(), "cannot read '{}': {}", path.string(), errno_str());
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  MONET_CHECK(!in.bad(), "cannot read '{}': I/O error", path.string());
  return bytes;
}

MappedFile::MappedFile(const fs::path& path) {
  std::error_code ec;
  MONET_CHECK(fs::exists(path, ec), "cannot read '{}': no such file", path.string());
  MONET_CHECK(!fs::is_directory(path, ec), "cannot read '{}': it is a folder", path.string());
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  MONET_CHECK(fd.get() >= 0, "cannot read '{}': {}", path.string(), errno_str());
  struct stat st {};
  MONET_CHECK(::fstat(fd.get(), &st) == 0, "cannot read '{}': {}", path.string(), errno_str());
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;  // mmap refuses length 0; the view is empty
  data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  MONET_CHECK(data_ != MAP_FAILED, "cannot map '{}': {}", path.string(), errno_str());
}

MappedFile::~MappedFile() {
  if (data_ != nullptr && data_ != MAP_FAILED) ::munmap(data_, size_);
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  MONET_CHECK(fd.get() >= 0, "cannot create '{}': {}", tmp.string(), errno_str());
  try {
    write_all(fd.get(), bytes, tmp);
    MONET_CHECK(::fsync(fd.get()) == 0, "cannot sync '{}': {}", tmp.string(), errno_str());
    MONET_CHECK(::close(fd.release()) == 0, "cannot close '{}': {}", tmp.string(), errno_str());
    std::error_code ec;
    fs::rename(tmp, path, ec);
    MONET_CHECK(!ec, "cannot rename '{}' to '{}': {}", tmp.string(), path.string(), ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  sync_folder(path.parent_path());
}

}  // namespace monet
