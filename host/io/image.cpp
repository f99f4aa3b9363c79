#include "host/io/image.hpp"

#include "host/io/file.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace almc::io {
namespace {
constexpr int64_t kMaxPixels = int64_t(1) << 26;

struct Glyph {
  char c;
  uint8_t rows[7];  // 5 bits per row, the leftmost pixel in bit 4
};
constexpr Glyph kFont[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
    {'0', {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}},
    {'1', {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'2', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}},
    {'3', {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}},
    {'4', {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}},
    {'5', {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}},
    {'6', {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}},
    {'7', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}},
    {'9', {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}},
    {'A', {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'B', {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}},
    {'C', {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}},
    {'D', {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}},
    {'E', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}},
    {'F', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}},
    {'G', {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}},
    {'H', {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'I', {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}},
    {'M', {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
    {'P', {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}},
    {'Q', {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}},
    {'R', {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}},
    {'S', {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}},
    {'T', {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}},
    {'X', {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}},
    {'Z', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}},
    {':', {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}},
    {'-', {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}},
    {'=', {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'[', {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e}},
    {']', {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e}},
    {'/', {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}},
    {'|', {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'\'', {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'!', {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}},
    {'"', {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00}},
    {'#', {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}},
    {'$', {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04}},
    {'&', {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d}},
    {'*', {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}},
    {';', {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08}},
    {'@', {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e}},
    {'\\', {0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01}},
    {'^', {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00}},
    {'`', {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00}},
    {'{', {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}},
    {'}', {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}},
    {'~', {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}},
    {'?', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

// The font's own glyph for c (lower case folds to upper case), or null.
const Glyph* find_glyph(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  for (const Glyph& g : kFont)
    if (g.c == c) return &g;
  return nullptr;
}

const Glyph& glyph(char c) {
  if (const Glyph* g = find_glyph(c)) return *g;
  return *find_glyph('?');
}

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
  // libpng reads a short text file as "read beyond end of data": say what the file is not.
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < sizeof kSignature || std::memcmp(bytes.data(), kSignature, sizeof kSignature) != 0)
    throw IoError(path + ": not a PNG file (it does not start with the PNG signature)");
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
  // The stored values, as image tools read them: an alpha channel is read and dropped (libpng
  // would otherwise composite the colour over a background, so a transparent white pixel read as
  // black), and 16-bit samples without a gAMA or sRGB chunk are taken as they are, scaled to 8
  // bits (libpng's default reads them as linear light and gamma-encodes them: 32768 read as 188).
  const bool alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  image.format = (out.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY) | (alpha ? PNG_FORMAT_FLAG_ALPHA : 0u);
  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  std::vector<png_byte> read(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, read.data(), 0, nullptr)) {
    const std::string msg = image.message;
    png_image_free(&image);
    throw IoError(path + ": cannot read PNG: " + msg);
  }
  png_image_free(&image);
  if (!alpha) {
    out.pixels = std::move(read);
    return out;
  }
  const size_t pixels = size_t(out.width) * size_t(out.height), stride = size_t(out.channels) + 1;
  out.pixels.resize(pixels * size_t(out.channels));
  for (size_t p = 0; p < pixels; ++p)
    for (size_t c = 0; c < size_t(out.channels); ++c) out.pixels[p * size_t(out.channels) + c] = read[p * stride + c];
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

bool font_has(char c) { return find_glyph(c) != nullptr; }

int text_width(const std::string& text, int scale) { return int(text.size()) * 6 * std::max(1, scale); }
int text_height(int scale) { return 8 * std::max(1, scale); }

void draw_text(Image8& im, int x, int y, const std::string& text, int scale, uint8_t value) {
  scale = std::max(1, scale);
  for (size_t k = 0; k < text.size(); ++k) {
    const Glyph& g = glyph(text[k]);
    const int gx = x + int(k) * 6 * scale;
    for (int r = 0; r < 7; ++r)
      for (int col = 0; col < 5; ++col) {
        if (!(g.rows[r] & (0x10 >> col))) continue;
        for (int dy = 0; dy < scale; ++dy)
          for (int dx = 0; dx < scale; ++dx) {
            const int px = gx + col * scale + dx, py = y + r * scale + dy;
            if (px < 0 || py < 0 || px >= im.width || py >= im.height) continue;
            uint8_t* p = &im.pixels[(size_t(py) * size_t(im.width) + size_t(px)) * size_t(im.channels)];
            for (int c = 0; c < im.channels; ++c) p[c] = value;
          }
      }
  }
}

Image8 compose_grid(const std::vector<std::vector<Tile>>& rows, const GridStyle& st) {
  const int scale = std::max(1, st.scale), pad = std::max(0, st.pad);
  const int ts = std::max(1, std::min(st.text_scale, 8)), line = text_height(ts);
  bool any_col_title = false, any_note = false;
  for (const auto& t : st.column_titles) any_col_title = any_col_title || !t.empty();
  int notes_w = 0;
  for (const auto& n : st.row_notes) {
    any_note = any_note || !n.empty();
    notes_w = std::max(notes_w, text_width(n, ts));
  }
  const int top = (st.title.empty() ? 0 : line + pad) + (any_col_title ? line + pad / 2 : 0);
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
  int64_t W = pad, H = pad + top;
  for (int w : col_w) W += w + pad;
  for (int h : row_h) H += h + pad;
  const int64_t grid_w = W;
  if (any_note) W += notes_w + pad;
  if (!st.title.empty()) W = std::max<int64_t>(W, 2 * pad + text_width(st.title, ts));
  if (W * H > kMaxPixels) throw IoError("grid image too large");
  Image8 out;
  out.width = static_cast<int>(W);
  out.height = static_cast<int>(H);
  out.channels = channels;
  out.pixels.assign(size_t(W) * size_t(H) * size_t(channels), st.background);
  if (!st.title.empty()) draw_text(out, pad, pad, st.title, ts, 0);
  if (any_col_title) {
    int x0 = pad;
    const int ty = pad + (st.title.empty() ? 0 : line + pad);
    for (size_t j = 0; j < n_cols; ++j) {
      if (j < st.column_titles.size()) {
        // Cut to the column (and its gap) so titles never run into the next column.
        const size_t fit = size_t(std::max(0, (col_w[j] + pad) / (6 * ts)));
        draw_text(out, x0, ty, st.column_titles[j].substr(0, fit), ts, 0);
      }
      x0 += col_w[j] + pad;
    }
  }
  int y0 = pad + top;
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
    if (i < st.row_notes.size() && !st.row_notes[i].empty())
      draw_text(out, static_cast<int>(grid_w), y0 + std::max(0, (row_h[i] - line) / 2), st.row_notes[i], ts, 0);
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
