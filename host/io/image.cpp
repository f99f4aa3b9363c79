#include "host/io/image.hpp"

#include "host/io/file.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace almc::io {
namespace {
constexpr int64_t kMaxPixels = int64_t(1) << 26;

uint8_t to_u8(float v, float lo, float hi) {
  if (!(hi > lo)) return 0;
  float u = (v - lo) / (hi - lo);
  if (!(u >= 0.f)) u = 0.f;  // NaN shows as black
  if (u > 1.f) u = 1.f;
  return static_cast<uint8_t>(std::lround(u * 255.f));
}
}  // namespace

void write_png(const std::string& path, const Image8& im) {
  if (im.width <= 0 || im.height <= 0 || (im.channels != 1 && im.channels != 3))
    throw IoError(path + ": cannot write PNG of " + std::to_string(im.width) + "x" + std::to_string(im.height) + "x" +
                  std::to_string(im.channels));
  if (im.pixels.size() != size_t(im.width) * size_t(im.height) * size_t(im.channels))
    throw IoError(path + ": PNG pixel buffer has the wrong size");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(im.width);
  image.height = static_cast<png_uint_32>(im.height);
  image.format = im.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  // Encoded in memory, then written atomically: libpng's own file writer truncates the destination
  // first and removes it on failure, whatever kind of file it is.
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(image, size, 0, im.pixels.data(), 0, nullptr)) {
    const std::string msg = image.message;
    png_image_free(&image);
    throw IoError(path + ": cannot encode PNG: " + msg);
  }
  std::vector<unsigned char> bytes(size);
  if (!png_image_write_to_memory(&image, bytes.data(), &size, 0, im.pixels.data(), 0, nullptr)) {
    const std::string msg = image.message;
    png_image_free(&image);
    throw IoError(path + ": cannot encode PNG: " + msg);
  }
  write_file_atomic(path, bytes.data(), size);
}

Image8 read_png(const std::string& path) {
  const std::vector<unsigned char> bytes = read_regular_file(path, kMaxImageFileBytes);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    const std::string msg = image.message;
    png_image_free(&image);
    throw IoError(path + ": cannot read PNG: " + msg);
  }
  if (int64_t(image.width) * int64_t(image.height) > kMaxPixels) {
    png_image_free(&image);
    throw IoError(path + ": PNG too large (" + std::to_string(image.width) + "x" + std::to_string(image.height) + ")");
  }
  Image8 out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  image.format = out.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  png_color black{0, 0, 0};
  if (!png_image_finish_read(&image, &black, out.pixels.data(), 0, nullptr)) {
    const std::string msg = image.message;
    png_image_free(&image);
    throw IoError(path + ": cannot read PNG: " + msg);
  }
  png_image_free(&image);
  return out;
}

std::vector<float> image_to_planar(const Image8& im, float lo, float hi) {
  const size_t hw = size_t(im.width) * size_t(im.height);
  std::vector<float> out(hw * size_t(im.channels));
  for (int c = 0; c < im.channels; ++c)
    for (size_t p = 0; p < hw; ++p)
      out[size_t(c) * hw + p] = lo + (hi - lo) * (float(im.pixels[p * size_t(im.channels) + size_t(c)]) / 255.f);
  return out;
}

Image8 compose_grid(const std::vector<std::vector<Tile>>& rows, const GridStyle& st) {
  const int scale = std::max(1, st.scale), pad = std::max(0, st.pad);
  size_t n_cols = 0;
  for (const auto& r : rows) n_cols = std::max(n_cols, r.size());
  std::vector<int> col_w(n_cols, 0), row_h(rows.size(), 0);
  int channels = 1;
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) {
      const Tile& t = rows[i][j];
      if (!t.data) continue;
      if (t.C != 1 && t.C != 3) throw IoError("grid tile with " + std::to_string(t.C) + " channels (need 1 or 3)");
      if (t.H <= 0 || t.W <= 0 || t.H > 4096 || t.W > 4096) throw IoError("grid tile of bad size");
      if (t.zoom < 1 || t.zoom > 64) throw IoError("grid tile zoom out of range");
      if (t.C == 3) channels = 3;
      col_w[j] = std::max(col_w[j], t.W * scale * t.zoom);
      row_h[i] = std::max(row_h[i], t.H * scale * t.zoom);
    }
  int64_t W = pad, H = pad;
  for (int w : col_w) W += w + pad;
  for (int h : row_h) H += h + pad;
  if (W * H > kMaxPixels) throw IoError("grid image too large");
  Image8 out;
  out.width = static_cast<int>(W);
  out.height = static_cast<int>(H);
  out.channels = channels;
  out.pixels.assign(size_t(W) * size_t(H) * size_t(channels), st.background);
  int y0 = pad;
  for (size_t i = 0; i < rows.size(); ++i) {
    int x0 = pad;
    for (size_t j = 0; j < n_cols; ++j) {
      if (j < rows[i].size() && rows[i][j].data) {
        const Tile& t = rows[i][j];
        const int s = scale * t.zoom;
        const size_t hw = size_t(t.H) * size_t(t.W);
        for (int y = 0; y < t.H * s; ++y)
          for (int x = 0; x < t.W * s; ++x) {
            const size_t src = size_t(y / s) * size_t(t.W) + size_t(x / s);
            uint8_t* dst = &out.pixels[(size_t(y0 + y) * size_t(W) + size_t(x0 + x)) * size_t(channels)];
            for (int c = 0; c < channels; ++c) {
              const int sc = t.C == 3 ? c : 0;
              dst[c] = to_u8(t.data[size_t(sc) * hw + src], t.lo, t.hi);
            }
          }
      }
      x0 += col_w[j] + pad;
    }
    y0 += row_h[i] + pad;
  }
  return out;
}

double psnr(const float* a, const float* b, int64_t n, double data_range) {
  if (n <= 0) return std::numeric_limits<double>::quiet_NaN();
  double se = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    se += d * d;
  }
  const double mse = se / double(n);
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(data_range * data_range / mse);
}

}  // namespace almc::io
