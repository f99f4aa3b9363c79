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
  EXPECT_EQ(drawn("\xc2\xb5"), drawn("??"));  // not ASCII (UTF-8 micro sign): the fallback
  EXPECT_EQ(drawn("\t"), drawn("?"));
  EXPECT_EQ(drawn(" "), std::vector<uint8_t>(6 * 8, 255));
  // Clipped at the image's edges, never written outside.
  Image8 im = white(3, 3);
  almc::io::draw_text(im, -2, -2, "WW", 1, 0);
  EXPECT_EQ(im.pixels.size(), 9u);
}

// Every printable ASCII character has a glyph of its own (the figures' titles and notes use ':',
// ';', '|', '[', '_', '%', digits, '.', '-' and letters; a missing glyph was drawn as '?'), and no
// two glyphs look alike (a glyph copied from another would pass a presence check).
TEST(ImageText, EveryPrintableAsciiCharacterHasItsOwnGlyph) {
  std::vector<std::vector<uint8_t>> seen;
  for (int c = 0x20; c < 0x7f; ++c) {
    if (c >= 'a' && c <= 'z') continue;  // folded to upper case (checked above)
    EXPECT_TRUE(almc::io::font_has(char(c))) << "no glyph for '" << char(c) << "'";
    const std::vector<uint8_t> g = drawn(std::string(1, char(c)));
    if (c != '?') EXPECT_NE(g, drawn("?")) << "'" << char(c) << "' is drawn as the fallback";
    for (size_t k = 0; k < seen.size(); ++k) EXPECT_NE(g, seen[k]) << "'" << char(c) << "' looks like another glyph";
    seen.push_back(g);
  }
  EXPECT_FALSE(almc::io::font_has('\n'));
  EXPECT_FALSE(almc::io::font_has(char(0xb5)));
  for (const char* t : {"samples: Tweedie-denoised last iterate (E[x0 | x_tau])",
                        "2x super-resolution (2x2 average pooling); samples: last iterate",
                        "PSNR mean 17.1 dB, samples 15.4 dB, measurement 11.4 dB"})
    for (const char* p = t; *p; ++p) EXPECT_TRUE(almc::io::font_has(*p)) << "'" << *p << "' in " << t;
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
