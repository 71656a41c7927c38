// The driver of a fuzz target in an ordinary (gcc) build: feeds every file of the
// directories and files named on the command line to LLVMFuzzerTestOneInput, so the
// seed corpus runs as a plain test without clang or libFuzzer. With no arguments it
// reads the directory in $PS_FUZZ_CORPUS. A failing input aborts inside the target;
// the driver prints each file's name first so the log names the culprit.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// Appends the regular files under `path` (itself when a file), sorted, to `out`.
void Collect(const std::string& path, std::vector<std::string>* out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "%s: cannot stat\n", path.c_str());
    std::exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    out->push_back(path);
    return;
  }
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) {
    std::fprintf(stderr, "%s: cannot open\n", path.c_str());
    std::exit(2);
  }
  std::vector<std::string> names;
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) Collect(path + "/" + name, out);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> roots(argv + 1, argv + argc);
  if (roots.empty()) {
    const char* env = std::getenv("PS_FUZZ_CORPUS");
    if (env == nullptr) {
      std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE... (or set PS_FUZZ_CORPUS)\n", argv[0]);
      return 2;
    }
    roots.push_back(env);
  }
  std::vector<std::string> files;
  for (const std::string& r : roots) Collect(r, &files);
  if (files.empty()) {
    std::fprintf(stderr, "no corpus files\n");
    return 2;
  }
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "input %s (%zu bytes)\n", f.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::fprintf(stderr, "%zu inputs ran clean\n", files.size());
  return 0;
}
