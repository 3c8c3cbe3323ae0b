// Times Google's C++ snappy (RawUncompress) on the snappy payloads `walfix-prof payloads` wrote
// (u32 little-endian length + bytes each): one thread, best of N passes. Prints the output
// bytes and an FNV-1a hash of every output, which `walfix-prof payloads` also prints for snap's
// outputs, so a decoder that disagrees shows.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "snappy.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s N PAYLOADS\n", argv[0]);
    return 2;
  }
  int n = std::atoi(argv[1]);
  std::ifstream in(argv[2], std::ios::binary);
  std::vector<std::string> recs;
  size_t input = 0, max_out = 0;
  for (;;) {
    unsigned char len[4];
    if (!in.read(reinterpret_cast<char*>(len), 4)) break;
    uint32_t l = len[0] | (len[1] << 8) | (len[2] << 16) | (uint32_t(len[3]) << 24);
    std::string r(l, '\0');
    if (!in.read(&r[0], l)) {
      std::fprintf(stderr, "short payload file\n");
      return 1;
    }
    size_t out = 0;
    if (!snappy::GetUncompressedLength(r.data(), r.size(), &out)) {
      std::fprintf(stderr, "bad preamble\n");
      return 1;
    }
    if (out > max_out) max_out = out;
    input += l;
    recs.push_back(std::move(r));
  }
  std::vector<char> buf(max_out);
  uint64_t hash = 14695981039346656037ull;
  size_t output = 0;
  for (const auto& r : recs) {
    size_t out = 0;
    snappy::GetUncompressedLength(r.data(), r.size(), &out);
    if (!snappy::RawUncompress(r.data(), r.size(), buf.data())) {
      std::fprintf(stderr, "snappy rejected a record\n");
      return 1;
    }
    for (size_t i = 0; i < out; i++) hash = (hash ^ uint8_t(buf[i])) * 1099511628211ull;
    output += out;
  }
  double best = 1e100;
  for (int k = 0; k < n; k++) {
    auto t = std::chrono::steady_clock::now();
    for (const auto& r : recs) {
      if (!snappy::RawUncompress(r.data(), r.size(), buf.data())) return 1;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    if (s < best) best = s;
  }
  std::printf("c++ snappy %d.%d.%d: %zu records, %zu -> %zu bytes, fnv %016llx, best %.4f s (%.3f GB/s)\n",
              SNAPPY_MAJOR, SNAPPY_MINOR, SNAPPY_PATCHLEVEL, recs.size(), input, output,
              (unsigned long long)hash, best, output / best / 1e9);
  return 0;
}
