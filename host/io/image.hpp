// 8-bit images: PNG files through libpng's simplified API, grids of float tiles for figures, PSNR.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/io/npy.hpp"  // IoError

namespace almc::io {

// Interleaved 8-bit pixels, row-major [height, width, channels]; channels is 1 (gray) or 3 (RGB).
struct Image8 {
  int width = 0, height = 0, channels = 1;
  std::vector<uint8_t> pixels;
};

// Write gray or RGB PNG. Throws IoError with a one-line message.
void write_png(const std::string& path, const Image8& image);
// Read any PNG; gray (with or without alpha, any bit depth) becomes 1 channel, colour becomes 3
// (alpha dropped, composited on black). Images over 2^26 pixels are refused.
Image8 read_png(const std::string& path);

// Planar float image [C, H, W] from an Image8, each value v in [0, 255] mapped to lo + (hi-lo) v/255.
std::vector<float> image_to_planar(const Image8& image, float lo, float hi);

// One cell of a grid: a planar float image [C, H, W] (C = 1 or 3) shown with the linear map
// [lo, hi] -> [0, 255] (values outside are clipped). data == nullptr leaves the cell blank.
struct Tile {
  const float* data = nullptr;
  int C = 1, H = 0, W = 0;
  float lo = -1.f, hi = 1.f;
  int zoom = 1;  // extra nearest-neighbour factor for this tile (a downsampled measurement)
};

struct GridStyle {
  int scale = 8;          // nearest-neighbour upscaling of every pixel
  int pad = 4;            // pixels between cells (after scaling)
  uint8_t background = 255;
  // Text in the built-in font (black): a title line on top, a title over each column (cut to the
  // column's width) and a note to the right of each row. Empty strings draw nothing.
  std::string title;
  std::vector<std::string> column_titles, row_notes;
  int text_scale = 1;
};

// The built-in 5x7 bitmap font: every printable ASCII character (lower case is drawn in upper
// case); anything else (control characters, bytes of UTF-8 sequences) is drawn as '?'. Each
// character takes 6 x 8 cells of `scale` pixels (one column and one row of spacing).
// Whether the font draws c as itself (false: as '?').
bool font_has(char c);
int text_width(const std::string& text, int scale);
int text_height(int scale);
// Draw text with its top-left corner at (x, y), in `value` on every channel; clipped to the image.
void draw_text(Image8& image, int x, int y, const std::string& text, int scale, uint8_t value);

// Rows of tiles laid out in a grid; a column is as wide as its widest tile (scale * zoom * W).
Image8 compose_grid(const std::vector<std::vector<Tile>>& rows, const GridStyle& style);

// Peak signal-to-noise ratio in dB of a against b (n values), for data in a range of width
// `data_range` (2 for images in [-1, 1]). +Inf when equal.
double psnr(const float* a, const float* b, int64_t n, double data_range);

}  // namespace almc::io
