// The posterior grid PNG written by `almc sample --png` and `almc demo`.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "host/cli/commands.hpp"
#include "host/io/image.hpp"

namespace almc::cli {
namespace {

// A planar image [C, H, W] shown with the map [lo, hi] -> [0, 255].
almc::io::Tile tile(const float* p, const ImageShape& s, float lo, float hi) {
  almc::io::Tile t;
  t.data = p;
  t.C = static_cast<int>(s.C);
  t.H = static_cast<int>(s.H);
  t.W = static_cast<int>(s.W);
  t.lo = lo;
  t.hi = hi;
  return t;
}

}  // namespace

void write_posterior_png(const std::string& path, const PosteriorFigure& f) {
  if (!f.x.known()) throw CliError("--png needs the image shape: give --shape C,H,W", 2);
  if (f.x.C != 1 && f.x.C != 3) throw CliError("--png: images with " + std::to_string(f.x.C) + " channels cannot be drawn (need 1 or 3)", 2);
  const int64_t d = f.x.size();
  const int64_t m = f.y_shape.known() ? f.y_shape.size() : 0;
  float std_max = f.std_max;
  if (std_max <= 0.f && f.std) {
    for (int64_t i = 0; i < f.n_meas * d; ++i) std_max = std::max(std_max, f.std[i]);
    if (std_max <= 0.f) std_max = 1.f;
  }
  const int n_show = static_cast<int>(std::min<int64_t>(std::max(0, f.n_show), f.chains));
  std::vector<std::vector<almc::io::Tile>> rows;
  for (int64_t i = 0; i < f.n_meas; ++i) {
    std::vector<almc::io::Tile> row;
    const bool y_drawable = f.y && m > 0 && (f.y_shape.C == 1 || f.y_shape.C == 3);
    almc::io::Tile yt = y_drawable ? tile(f.y + i * m, f.y_shape, f.lo, f.hi) : almc::io::Tile{};
    // A downsampled measurement is drawn at the size of the images.
    if (y_drawable && f.y_shape.H < f.x.H && f.x.H % f.y_shape.H == 0 && f.x.W % f.y_shape.W == 0 &&
        f.x.H / f.y_shape.H == f.x.W / f.y_shape.W)
      yt.zoom = static_cast<int>(f.x.H / f.y_shape.H);
    row.push_back(yt);
    for (int k = 0; k < n_show; ++k) row.push_back(tile(f.samples + (i * f.chains + k) * d, f.x, f.lo, f.hi));
    row.push_back(f.mean ? tile(f.mean + i * d, f.x, f.lo, f.hi) : almc::io::Tile{});
    row.push_back(f.std ? tile(f.std + i * d, f.x, 0.f, std_max) : almc::io::Tile{});
    if (f.truth) row.push_back(tile(f.truth + i * d, f.x, f.lo, f.hi));
    rows.push_back(std::move(row));
  }
  almc::io::GridStyle style;
  style.scale = std::max(1, f.scale);
  style.pad = std::max(2, style.scale / 2);
  style.title = f.title;
  style.row_notes = f.row_notes;
  style.column_titles.push_back("measurement");
  for (int k = 0; k < n_show; ++k) style.column_titles.push_back("sample " + std::to_string(k + 1));
  style.column_titles.push_back("mean");
  style.column_titles.push_back("std");
  if (f.truth) style.column_titles.push_back("truth");
  try {
    almc::io::write_png(path, almc::io::compose_grid(rows, style));
  } catch (const almc::io::IoError& e) {
    throw CliError(std::string("--png ") + e.what());
  }
  output_written(path);
}

std::string sample_kind(const almc_sampler_config& c) {
  if (c.tweedie) return "Tweedie-denoised last iterate (E[x0 | x_tau])";
  if (c.average_last > 1) return "a random iterate among the last " + std::to_string(c.average_last) + " steps";
  return "last iterate (at the last noise level)";
}

void write_image_png(const std::string& path, const float* planar, const ImageShape& s, float lo, float hi) {
  if (s.C != 1 && s.C != 3) throw CliError("--png-each: images with " + std::to_string(s.C) + " channels cannot be drawn (need 1 or 3)", 2);
  const almc::io::Tile t = tile(planar, s, lo, hi);
  almc::io::GridStyle style;
  style.scale = 1;
  style.pad = 0;
  try {
    almc::io::write_png(path, almc::io::compose_grid({{t}}, style));
  } catch (const almc::io::IoError& e) {
    throw CliError(e.what());
  }
  output_written(path);
}

std::pair<float, float> parse_range(const std::string& text, const std::string& what) {
  const size_t comma = text.find(',');
  float lo = 0, hi = 0;
  try {
    if (comma == std::string::npos) throw std::invalid_argument("no comma");
    size_t used = 0;
    lo = std::stof(text.substr(0, comma), &used);
    if (used != comma) throw std::invalid_argument("trailing text");
    const std::string rest = text.substr(comma + 1);
    hi = std::stof(rest, &used);
    if (used != rest.size()) throw std::invalid_argument("trailing text");
  } catch (const std::exception&) {
    throw CliError(what + " must be LO,HI (two numbers), got '" + text + "'", 2);
  }
  if (!std::isfinite(lo) || !std::isfinite(hi))
    throw CliError(what + " must be LO,HI with finite numbers (within float32's range), got '" + text + "'", 2);
  if (!(hi > lo)) throw CliError(what + " must be LO,HI with LO < HI, got '" + text + "'", 2);
  return {lo, hi};
}

}  // namespace almc::cli
