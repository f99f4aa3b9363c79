// The built-in bitmap font and the figure text (issue 12, item 15): column titles, a title line and
// row notes drawn into the PNG grids.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "host/io/image.hpp"

namespace {

using almc::io::Image8;

Image8 white(int w, int h) {
  Image8 im;
  im.width = w;
  im.height = h;
  im.channels = 1;
  im.pixels.assign(size_t(w) * size_t(h), 255);
  return im;
}

std::vector<uint8_t> drawn(const std::string& text, int scale = 1) {
  Image8 im = white(almc::io::text_width(text, scale), almc::io::text_height(scale));
  almc::io::draw_text(im, 0, 0, text, scale, 0);
  return im.pixels;
}

TEST(ImageText, MinusIsOneHorizontalBar) {
  EXPECT_EQ(almc::io::text_width("AB", 1), 12);
  EXPECT_EQ(almc::io::text_width("AB", 2), 24);
  EXPECT_EQ(almc::io::text_height(1), 8);
  Image8 im = white(6, 8);
  almc::io::draw_text(im, 0, 0, "-", 1, 0);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 6; ++x) EXPECT_EQ(im.pixels[size_t(y * 6 + x)], (y == 3 && x < 5) ? 0 : 255) << x << "," << y;
  // Scaled: every font pixel becomes a scale x scale block.
  Image8 big = white(12, 16);
  almc::io::draw_text(big, 0, 0, "-", 2, 0);
  for (int x = 0; x < 10; ++x) {
    EXPECT_EQ(big.pixels[size_t(6 * 12 + x)], 0);
    EXPECT_EQ(big.pixels[size_t(7 * 12 + x)], 0);
    EXPECT_EQ(big.pixels[size_t(5 * 12 + x)], 255);
  }
}

TEST(ImageText, GlyphsDifferAndCaseFolds) {
  EXPECT_NE(drawn("1"), drawn("7"));
  EXPECT_NE(drawn("O"), drawn("0"));
  EXPECT_EQ(drawn("psnr db"), drawn("PSNR DB"));
  EXPECT_EQ(drawn("~"), drawn("?"));  // unknown characters
  EXPECT_EQ(drawn(" "), std::vector<uint8_t>(6 * 8, 255));
  // Clipped at the image's edges, never written outside.
  Image8 im = white(3, 3);
  almc::io::draw_text(im, -2, -2, "WW", 1, 0);
  EXPECT_EQ(im.pixels.size(), 9u);
}

TEST(ImageText, GridTitlesAndNotes) {
  const std::vector<float> a(4 * 4, 1.f);  // a white tile on [-1, 1]
  almc::io::Tile t;
  t.data = a.data();
  t.H = t.W = 4;
  almc::io::GridStyle st;
  st.scale = 4;
  st.pad = 2;
  const Image8 plain = almc::io::compose_grid({{t, t}}, st);
  st.column_titles = {"measurement", "mean"};
  st.title = "samples: last iterate";
  st.row_notes = {"PSNR 20.0 dB"};
  const Image8 titled = almc::io::compose_grid({{t, t}}, st);
  // Two text lines on top (title, column titles) and the note's width on the right.
  EXPECT_EQ(titled.height, plain.height + (8 + 2) + (8 + 1));
  EXPECT_GE(titled.width, plain.width + almc::io::text_width("PSNR 20.0 DB", 1));
  auto dark_in = [&](int x0, int x1, int y0, int y1) {
    int n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) n += titled.pixels[size_t(y) * size_t(titled.width) + size_t(x)] == 0;
    return n;
  };
  EXPECT_GT(dark_in(0, titled.width, 2, 10), 0);   // the title
  EXPECT_GT(dark_in(2, 18, 12, 20), 0);            // the first column's title, cut to its width
  // The first column is 16 px wide plus a 2 px gap: 3 characters of 6 px fit, so "measurement"
  // is drawn as "mea" and never reaches the second column (x >= 20).
  st.column_titles = {"mea", "mean"};
  EXPECT_EQ(almc::io::compose_grid({{t, t}}, st).pixels, titled.pixels);
  EXPECT_EQ(dark_in(19, 20, 12, 20), 0);
  EXPECT_GT(dark_in(plain.width, titled.width, 0, titled.height), 0);  // the note
}

}  // namespace
