// host/io: .npy round trips and strict header validation, PNG round trip, grids, PSNR.
#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "host/io/image.hpp"
#include "host/io/npy.hpp"

using namespace almc::io;

namespace {

std::string tmp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/almc_test_io_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<unsigned char> header_bytes(const std::string& dict, int major = 1) {
  std::vector<unsigned char> b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  const size_t n = dict.size();
  b.push_back(n & 0xff);
  b.push_back((n >> 8) & 0xff);
  if (major >= 2) {
    b.push_back((n >> 16) & 0xff);
    b.push_back((n >> 24) & 0xff);
  }
  b.insert(b.end(), dict.begin(), dict.end());
  return b;
}

std::string error_of(const std::vector<unsigned char>& bytes) {
  try {
    parse_npy_f32(bytes.data(), bytes.size(), "x.npy");
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Npy, RoundTripFloat32Shapes) {
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{}, {0}, {7}, {3, 4}, {2, 1, 16, 16}, {1, 1, 1, 1, 5}}) {
    const int64_t n = checked_product(shape);
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = 0.25f * float(i) - 3.f;
    const std::string p = tmp_path("f32.npy");
    write_npy(p, v.data(), shape);
    const auto a = read_npy_f32(p);
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.stored, DType::F32);
    EXPECT_EQ(a.data, v);
    std::remove(p.c_str());
  }
}

TEST(Npy, RoundTripFloat64AndConversion) {
  std::vector<double> v = {1.0 / 3.0, -2.5, 1e300, 0.0, std::numeric_limits<double>::quiet_NaN(), 7};
  const std::string p = tmp_path("f64.npy");
  write_npy(p, v.data(), {2, 3});
  const auto d = read_npy_f64(p);
  ASSERT_EQ(d.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(d.stored, DType::F64);
  EXPECT_EQ(d.data[0], 1.0 / 3.0);
  EXPECT_TRUE(std::isnan(d.data[4]));
  const auto f = read_npy_f32(p);
  EXPECT_EQ(f.data[0], float(1.0 / 3.0));
  EXPECT_TRUE(std::isinf(f.data[2]));  // out of float range
  int64_t bad = -1;
  EXPECT_FALSE(all_finite(f.data, &bad));
  EXPECT_EQ(bad, 2);
  std::remove(p.c_str());
}

TEST(Npy, HeaderIsNumpyCompatible) {
  const float v[3] = {1, 2, 3};
  const auto bytes = encode_npy(v, DType::F32, {3});
  ASSERT_GE(bytes.size(), 10u);
  const size_t hlen = bytes[8] | (bytes[9] << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);  // NumPy aligns the data to 64 bytes
  EXPECT_EQ(bytes[10 + hlen - 1], '\n');
  const std::string dict(bytes.begin() + 10, bytes.begin() + 10 + hlen);
  EXPECT_NE(dict.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(dict.find("'shape': (3,)"), std::string::npos);
  EXPECT_EQ(bytes.size(), 10 + hlen + 12);
}

TEST(Npy, BigEndianIsSwapped) {
  auto b = header_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n");
  const unsigned char be[8] = {0x3f, 0x80, 0, 0, 0xc0, 0x00, 0, 0};  // 1.0f, -2.0f big-endian
  b.insert(b.end(), be, be + 8);
  const auto a = parse_npy_f32(b.data(), b.size(), "be.npy");
  ASSERT_EQ(a.data.size(), 2u);
  EXPECT_EQ(a.data[0], 1.0f);
  EXPECT_EQ(a.data[1], -2.0f);
}

TEST(Npy, AcceptsVersion2AndDoubleQuotesAndNoTrailingComma) {
  auto b = header_bytes("{\"descr\": \"<f8\", \"shape\": (1, 2), \"fortran_order\": False}   \n", 2);
  const double v[2] = {4, 5};
  const auto* p = reinterpret_cast<const unsigned char*>(v);
  b.insert(b.end(), p, p + 16);
  const auto a = parse_npy_f32(b.data(), b.size(), "v2.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(a.data[1], 5.f);
}

TEST(Npy, RejectsBadFiles) {
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  auto with_data = [](std::vector<unsigned char> b, size_t n) {
    b.resize(b.size() + n, 0);
    return b;
  };
  auto prefix_of = [](std::vector<unsigned char> b, size_t n) {
    b.resize(n);
    return b;
  };
  struct Case {
    std::vector<unsigned char> bytes;
    const char* expect;
  };
  std::vector<Case> cases = {
      {{}, "too short"},
      {{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, "bad magic"},
      {header_bytes(ok, 9), "version 9.0"},
      {with_data(header_bytes(ok), 7), "truncated"},
      {with_data(header_bytes(ok), 9), "bytes after the data"},
      {prefix_of(header_bytes(ok), 20), "truncated"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n"), 8), "Fortran"},
      {with_data(header_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n"), 8), "unsupported dtype"},
      {with_data(header_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }\n"), 2), "unsupported dtype"},
      {with_data(header_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n"), 8), "structured"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n"), 8), "negative"},
      {header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n"), "overflows"},
      {header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"), "overflows"},
      {header_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }\n"), "overflows"},
      {header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }\n"), "truncated"},
      {with_data(header_bytes("{'descr': '<f4', 'shape': (2,), }\n"), 8), "lacks 'fortran_order'"},
      {with_data(header_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n"), 8), "duplicate"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n"), 8), "unexpected key"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,) junk\n"), 8), "expected"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk\n"), 8), "trailing"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}\n"), 8), "True or False"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (a,)}\n"), 8), "tuple of integers"},
      {with_data(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,"), 8), "end of header"},
      {with_data(header_bytes(std::string("{'descr': '<f4\xff', 'fortran_order': False, 'shape': (2,)}\n")), 8), "non-ASCII"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string err = error_of(cases[i].bytes);
    EXPECT_NE(err.find(cases[i].expect), std::string::npos) << "case " << i << ": got '" << err << "'";
    EXPECT_EQ(err.find('\n'), std::string::npos) << "case " << i << " message is not one line";
    EXPECT_EQ(err.rfind("x.npy: ", 0), 0u) << "case " << i << " message does not name the file";
  }
}

TEST(Npy, EveryTruncationOfAValidFileIsRejected) {
  const float v[6] = {1, 2, 3, 4, 5, 6};
  const auto full = encode_npy(v, DType::F32, {2, 3});
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<unsigned char> cut(full.begin(), full.begin() + n);
    EXPECT_FALSE(error_of(cut).empty()) << "prefix of " << n << " bytes accepted";
  }
  EXPECT_TRUE(error_of(full).empty());
}

TEST(Npy, MissingFileAndDirectory) {
  try {
    read_npy_f32("/nonexistent/almc/file.npy");
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
  EXPECT_THROW(read_npy_f32("/"), IoError);
}

TEST(Png, RoundTripGrayAndRgb) {
  for (int ch : {1, 3}) {
    Image8 im;
    im.width = 5;
    im.height = 3;
    im.channels = ch;
    im.pixels.resize(5 * 3 * ch);
    for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>(i * 17 % 256);
    const std::string p = tmp_path("rt.png");
    write_png(p, im);
    const Image8 r = read_png(p);
    EXPECT_EQ(r.width, 5);
    EXPECT_EQ(r.height, 3);
    EXPECT_EQ(r.channels, ch);
    EXPECT_EQ(r.pixels, im.pixels);
    std::remove(p.c_str());
  }
}

// A PNG written with libpng's low-level API (as other tools write them): `rows` of
// width * channels samples each, 8 or 16 bits deep, optionally with a gAMA chunk.
static void write_png_raw(const std::string& path, int width, int color_type, int bit_depth,
                   const std::vector<std::vector<unsigned>>& rows, double gamma = 0) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, f);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(rows.size()), bit_depth, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (gamma > 0) png_set_gAMA(png, info, gamma);
  png_write_info(png, info);
  for (const auto& row : rows) {
    std::vector<png_byte> bytes;
    for (unsigned v : row) {
      if (bit_depth == 16) bytes.push_back(static_cast<png_byte>(v >> 8));  // big-endian
      bytes.push_back(static_cast<png_byte>(v & 0xff));
    }
    png_write_row(png, bytes.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

// A 16-bit PNG read as if its samples were linear light (32768 became 188 of 255, not 128), and
// an alpha channel composited over black (a transparent white pixel read as 0): the stored values
// are what a user means, scaled to 8 bits, the alpha dropped.
TEST(Png, SixteenBitAndAlphaReadAsStored) {
  const std::string p = tmp_path("raw.png");
  write_png_raw(p, 4, PNG_COLOR_TYPE_GRAY, 16, {{0, 32768, 65535, 2570}});
  Image8 r = read_png(p);
  ASSERT_EQ(r.channels, 1);
  EXPECT_EQ(r.pixels, (std::vector<uint8_t>{0, 128, 255, 10}));
  write_png_raw(p, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {{255, 0, 100, 255}, {30, 128, 7, 1}});
  r = read_png(p);
  ASSERT_EQ(r.channels, 1);
  ASSERT_EQ(r.height, 2);
  EXPECT_EQ(r.pixels, (std::vector<uint8_t>{255, 100, 30, 7}));
  write_png_raw(p, 2, PNG_COLOR_TYPE_RGB_ALPHA, 8, {{255, 128, 0, 0, 1, 2, 3, 255}});
  r = read_png(p);
  ASSERT_EQ(r.channels, 3);
  EXPECT_EQ(r.pixels, (std::vector<uint8_t>{255, 128, 0, 1, 2, 3}));
  write_png_raw(p, 1, PNG_COLOR_TYPE_RGB, 16, {{65535, 32768, 0}});
  r = read_png(p);
  ASSERT_EQ(r.channels, 3);
  EXPECT_EQ(r.pixels, (std::vector<uint8_t>{255, 128, 0}));
  // A file that says its 16-bit samples are linear (gAMA 1.0) is gamma-encoded as it asks: half
  // of full light is about 186 (libpng's 1/2.2 power) to 188 (the sRGB curve), not 128.
  write_png_raw(p, 1, PNG_COLOR_TYPE_GRAY, 16, {{32768}}, 1.0);
  r = read_png(p);
  EXPECT_GE(r.pixels[0], 185);
  EXPECT_LE(r.pixels[0], 189);
  std::remove(p.c_str());
}

TEST(Png, RejectsGarbageAndTruncated) {
  const std::string p = tmp_path("bad.png");
  {
    std::ofstream f(p, std::ios::binary);
    f << "this is not a png file at all";
  }
  EXPECT_THROW(read_png(p), IoError);
  Image8 im;
  im.width = im.height = 32;
  im.pixels.assign(32 * 32, 100);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>(i * 31);
  write_png(p, im);
  std::ifstream in(p, std::ios::binary);
  std::vector<char> all((std::istreambuf_iterator<char>(in)), {});
  in.close();
  for (size_t n : {size_t(8), size_t(40), all.size() / 2, all.size() - 13}) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(all.data(), static_cast<std::streamsize>(n));
    f.close();
    EXPECT_THROW(read_png(p), IoError) << n;
  }
  EXPECT_THROW(read_png("/nonexistent/x.png"), IoError);
  std::remove(p.c_str());
}

TEST(Png, ImageToPlanarMapsRange) {
  Image8 im;
  im.width = 2;
  im.height = 1;
  im.channels = 3;
  im.pixels = {0, 255, 0, 255, 0, 255};
  const auto v = image_to_planar(im, -1.f, 1.f);
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[0], -1.f);  // channel 0, pixel 0
  EXPECT_EQ(v[1], 1.f);   // channel 0, pixel 1
  EXPECT_EQ(v[2], 1.f);   // channel 1, pixel 0
}

TEST(Grid, LayoutScalingAndSmallTiles) {
  std::vector<float> a(4 * 4, 1.f), small(2 * 2, -1.f);
  Tile ta{a.data(), 1, 4, 4, -1.f, 1.f}, ts{small.data(), 1, 2, 2, -1.f, 1.f, 2};
  GridStyle st;
  st.scale = 2;
  st.pad = 1;
  st.background = 128;
  const Image8 g = compose_grid({{ts, ta}, {ta, Tile{}}}, st);
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.width, 1 + 8 + 1 + 8 + 1);
  EXPECT_EQ(g.height, 1 + 8 + 1 + 8 + 1);
  EXPECT_EQ(g.pixels[1 * g.width + 1], 0);        // small tile, zoomed to fill the 8x8 cell
  EXPECT_EQ(g.pixels[8 * g.width + 8], 0);
  EXPECT_EQ(g.pixels[1 * g.width + 10], 255);     // full tile
  EXPECT_EQ(g.pixels[0], 128);                    // padding
  EXPECT_EQ(g.pixels[12 * g.width + 12], 128);    // blank cell
}

TEST(Psnr, KnownValues) {
  std::vector<float> a(100, 0.f), b(100, 0.f);
  EXPECT_TRUE(std::isinf(psnr(a.data(), b.data(), 100, 2.0)));
  for (auto& v : b) v = 0.2f;  // mse 0.04 -> 10 log10(4 / 0.04) = 20 dB
  EXPECT_NEAR(psnr(a.data(), b.data(), 100, 2.0), 20.0, 1e-5);
}
