// Snapshot files (almc_snapshot_*, almc.h): the one container of a resumable state, shared by the
// command line and the Python package. Written and read back it resumes a run to the bits of the
// uninterrupted one; its bytes are the format both writers used before it moved into the library
// ("almc-snapshot-1", a sorted JSON record, the state), and files in that format written by the old
// Python package (run_id "python") stay readable; damaged files and foreign states are refused with
// the status and a message saying what is wrong.
#include <almc/almc.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<float> ramp(size_t n, float a, float b) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = a + b * std::sin(0.7f * float(i) + 0.3f);
  return v;
}

struct Problem {
  almc::Context ctx{ALMC_BACKEND_CPU};
  int64_t d = 5;
  almc::Score prior = almc::Score::gaussian(ctx, ramp(size_t(d), 0.f, 1.f), ramp(size_t(d), 1.f, 0.3f));
  almc::Operator op = almc::Operator::identity(ctx, d);
  std::vector<float> y = ramp(size_t(d), 0.2f, 0.8f);
  almc_sampler_config cfg() const {
    almc_sampler_config c = almc_sampler_config_default();
    c.chains_per_meas = 4;
    c.seed = 11;
    c.noise_std = 0.4;
    c.kappa = 2;
    c.delta = 5e-3;
    c.t_start = 1.0;
    c.t_stop = 0.05;
    return c;
  }
};

struct Kept {
  std::vector<unsigned char> state;
  int64_t step = -1;
};
int keep_first(const void* state, size_t bytes, int64_t step, void* user) {
  auto* k = static_cast<Kept*>(user);
  if (k->step < 0) {
    k->state.assign(static_cast<const unsigned char*>(state), static_cast<const unsigned char*>(state) + bytes);
    k->step = step;
  }
  return 0;
}

struct Snap {
  almc_snapshot_t h = nullptr;
  Snap() { EXPECT_EQ(almc_snapshot_create(&h), ALMC_OK); }
  ~Snap() { almc_snapshot_destroy(h); }
  std::string err() const { return almc_snapshot_last_error(h); }
  std::vector<unsigned char> state(int64_t* step = nullptr, int64_t* total = nullptr) const {
    const void* p = nullptr;
    size_t n = 0;
    EXPECT_EQ(almc_snapshot_state(h, &p, &n, step, total), ALMC_OK) << err();
    return {static_cast<const unsigned char*>(p), static_cast<const unsigned char*>(p) + n};
  }
};

std::string temp_dir() {
  char tmpl[] = "/tmp/almc_snapshot_XXXXXX";
  const char* d = mkdtemp(tmpl);
  EXPECT_NE(d, nullptr);
  return d ? d : "/tmp";
}
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}
void put(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// The state digest of the format as 16 hex digits, written here apart from the library's: FNV-1a
// with the 64-bit prime 0x100000001b3 and almc's offset basis 1469598103934665603 (see
// host/core/digest.hpp; the published basis is 14695981039346656037).
std::string fnv1a64_hex(const unsigned char* p, size_t n) {
  uint64_t h = 0x14650fb0739d0383ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// A container as written before the record held the state's digest.
std::string without_digest(std::string file) {
  const size_t at = file.find(",\"state_fnv1a\":\"");
  if (at != std::string::npos) file.erase(at, std::strlen(",\"state_fnv1a\":\"") + 17);
  return file;
}

// A run's samples, whole or resumed from `state`.
std::vector<float> samples(Problem& p, const std::vector<unsigned char>* state, Kept* keep = nullptr,
                           int64_t* total = nullptr) {
  almc_sampler_config c = p.cfg();
  if (keep) {
    c.checkpoint_every = 40;
    c.checkpoint = &keep_first;
    c.checkpoint_user_data = keep;
  }
  almc::Sampler s(p.ctx, p.prior, p.op, c);
  s.set_measurement(p.y);
  if (state) s.load_state(*state);
  s.run();
  if (total) *total = s.info().steps;
  if (state) EXPECT_GT(s.info().start_step, 0);
  return s.samples();
}

TEST(SnapshotFile, WrittenAndReadBackItResumesToTheUninterruptedBits) {
  Problem p;
  Kept kept;
  int64_t total = 0;
  const std::vector<float> whole = samples(p, nullptr, &kept, &total);
  ASSERT_EQ(kept.step, 40);
  const std::string dir = temp_dir(), path = dir + "/run.snap";

  Snap w;
  const std::string run = "{ \"tool\": \"test\",\n \"seed\": 1 }";  // stored compact, keys sorted
  ASSERT_EQ(almc_snapshot_set(w.h, kept.state.data(), kept.state.size(), run.c_str()), ALMC_OK) << w.err();
  ASSERT_EQ(almc_snapshot_write(w.h, path.c_str()), ALMC_OK) << w.err();

  // The bytes: the format both writers used before (the record's keys sorted, run_id the FNV-1a
  // digest of the compact run text, computed outside the library), and the state's FNV-1a digest.
  const std::string head = "almc-snapshot-1\n{\"format\":\"almc-snapshot-1\",\"run\":{\"seed\":1,\"tool\":\"test\"},"
                           "\"run_id\":\"7971f039cfa1be29\",\"state_bytes\":" + std::to_string(kept.state.size()) +
                           ",\"state_fnv1a\":\"" + fnv1a64_hex(kept.state.data(), kept.state.size()) +
                           "\",\"step\":40,\"total\":" + std::to_string(total) + "}\n";
  EXPECT_EQ(slurp(path), head + std::string(kept.state.begin(), kept.state.end()));

  Snap r;
  ASSERT_EQ(almc_snapshot_read(r.h, path.c_str()), ALMC_OK) << r.err();
  int64_t step = -1, tot = -1;
  const std::vector<unsigned char> back = r.state(&step, &tot);
  EXPECT_EQ(back, kept.state);
  EXPECT_EQ(step, 40);
  EXPECT_EQ(tot, total);
  EXPECT_STREQ(almc_snapshot_run(r.h), "{\"seed\":1,\"tool\":\"test\"}");
  EXPECT_EQ(almc_snapshot_check_run(r.h, "{\"tool\":\"test\",\"seed\":1}"), ALMC_OK) << r.err();
  EXPECT_EQ(almc_snapshot_check_run(r.h, "{\"tool\":\"test\",\"seed\":2,\"extra\":0}"), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r.err(), "this is a snapshot of another run (extra, seed differ)");
  EXPECT_EQ(samples(p, &back), whole);

  // From memory: the container as bytes, or the bare state.
  const std::string file = slurp(path);
  Snap m;
  ASSERT_EQ(almc_snapshot_parse(m.h, file.data(), file.size()), ALMC_OK) << m.err();
  EXPECT_EQ(m.state(), kept.state);
  ASSERT_EQ(almc_snapshot_parse(m.h, kept.state.data(), kept.state.size()), ALMC_OK) << m.err();
  EXPECT_EQ(m.state(&step), kept.state);
  EXPECT_EQ(step, 40);
  EXPECT_STREQ(almc_snapshot_run(m.h), "null");
  // A bare state has no record to compare: said as such (it read "(its record differ)").
  EXPECT_EQ(almc_snapshot_check_run(m.h, "{\"tool\":\"test\",\"seed\":1}"), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(m.err().find("bare sampler state, without the record of the run"), std::string::npos) << m.err();
  // One key differs: "differs".
  EXPECT_EQ(almc_snapshot_check_run(r.h, "{\"tool\":\"test\",\"seed\":2}"), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r.err(), "this is a snapshot of another run (seed differs)");
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

TEST(SnapshotFile, FilesOfThePythonPackageBeforeTheMoveStayReadable) {
  Problem p;
  Kept kept;
  int64_t total = 0;
  const std::vector<float> whole = samples(p, nullptr, &kept, &total);
  // As almc/_state.py wrote them: run_id "python", json.dumps with its own key order.
  const std::string dir = temp_dir(), path = dir + "/py.snap";
  put(path, "almc-snapshot-1\n{\"format\":\"almc-snapshot-1\",\"run_id\":\"python\",\"run\":{\"written_by\":\"almc Python "
            "package 0.1.0\",\"seed\":11,\"chain_range\":null},\"step\":40,\"total\":" + std::to_string(total) +
            ",\"state_bytes\":" + std::to_string(kept.state.size()) + "}\n" +
            std::string(kept.state.begin(), kept.state.end()));
  Snap r;
  ASSERT_EQ(almc_snapshot_read(r.h, path.c_str()), ALMC_OK) << r.err();
  const std::vector<unsigned char> back = r.state();
  EXPECT_EQ(samples(p, &back), whole);
  EXPECT_STREQ(almc_snapshot_run(r.h), "{\"chain_range\":null,\"seed\":11,\"written_by\":\"almc Python package 0.1.0\"}");
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

TEST(SnapshotFile, DamagedFilesAndForeignStatesAreRefusedNamingTheProblem) {
  Problem p;
  Kept kept;
  samples(p, nullptr, &kept);
  const std::string dir = temp_dir(), path = dir + "/s.snap";
  Snap w;
  ASSERT_EQ(almc_snapshot_set(w.h, kept.state.data(), kept.state.size(), nullptr), ALMC_OK) << w.err();
  ASSERT_EQ(almc_snapshot_write(w.h, path.c_str()), ALMC_OK) << w.err();
  const std::string good = slurp(path);

  Snap r;
  ASSERT_EQ(almc_snapshot_read(r.h, path.c_str()), ALMC_OK) << r.err();
  const auto refused = [&](const std::string& bytes, almc_status want, const std::string& says) {
    put(path, bytes);
    EXPECT_EQ(almc_snapshot_read(r.h, path.c_str()), want) << says;
    EXPECT_NE(r.err().find(says), std::string::npos) << r.err();
    EXPECT_EQ(r.err().find(path + ": "), 0u) << r.err();  // the file is named first
    EXPECT_EQ(r.err().find('\n'), std::string::npos);
    EXPECT_EQ(r.state(), kept.state);  // a failed read keeps what was held
  };
  refused("not a snapshot", ALMC_ERR_PARSE, "not an almc snapshot");
  refused(good.substr(0, good.size() - 5), ALMC_ERR_PARSE, "truncated or padded (");
  refused(good + "x", ALMC_ERR_PARSE, "truncated or padded (");
  refused("almc-snapshot-1\n{\"state_bytes\":", ALMC_ERR_PARSE, "the snapshot's record is cut off");
  refused("almc-snapshot-1\n{oops}\n", ALMC_ERR_PARSE, "not valid JSON");
  refused("almc-snapshot-1\n{\"state_bytes\":-3}\n", ALMC_ERR_PARSE, "record is malformed");
  std::string wrong_step = good;
  const size_t at = wrong_step.find("\"step\":40");
  ASSERT_NE(at, std::string::npos);
  wrong_step[at + 8] = '1';  // 41
  refused(wrong_step, ALMC_ERR_PARSE, "disagree on the step");
  // One flipped bit in the chains: the digest in the record no longer matches (it resumed into other
  // samples before the record held one).
  std::string flipped = good;
  flipped[flipped.size() - 5] = static_cast<char>(flipped[flipped.size() - 5] ^ 0x10);
  refused(flipped, ALMC_ERR_PARSE, "does not match the digest in its record (the file is damaged)");
  std::string wrong_digest = good;
  const size_t digit = good.find("\"state_fnv1a\":\"") + 15;
  ASSERT_LT(digit, good.size());
  wrong_digest[digit] = good[digit] == '0' ? '1' : '0';
  refused(wrong_digest, ALMC_ERR_PARSE, "does not match the digest");
  // A file without the digest (written before it) is read as before; the checks below are those of
  // the state's own header, so they use such a file.
  const std::string undigested = without_digest(good);
  ASSERT_NE(undigested, good);
  put(path, undigested);
  ASSERT_EQ(almc_snapshot_read(r.h, path.c_str()), ALMC_OK) << r.err();
  EXPECT_EQ(r.state(), kept.state);
  // The state inside: another byte order (the header's version field byte-swapped), another version.
  const size_t state_at = undigested.size() - kept.state.size();
  std::string swapped = undigested;
  std::reverse(swapped.begin() + static_cast<std::ptrdiff_t>(state_at + 8),
               swapped.begin() + static_cast<std::ptrdiff_t>(state_at + 12));
  refused(swapped, ALMC_ERR_INVALID_ARGUMENT, "the snapshot's state: a sampler state written on a machine of the other byte order");
  std::string other = undigested;
  other[state_at + 8] = static_cast<char>(other[state_at + 8] + 7);
  refused(other, ALMC_ERR_INVALID_ARGUMENT, "a sampler state of another format (version");

  // A record nested 100000 deep (200 KB of brackets): copying or printing it recursed once per level
  // and overflowed the stack; it is refused as damaged (and so is such a run description given to set).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string nested = good;
  const size_t run_at = nested.find("\"run\":null");
  ASSERT_NE(run_at, std::string::npos);
  nested.replace(run_at, 10, "\"run\":" + deep);
  refused(nested, ALMC_ERR_PARSE, "the snapshot's record: JSON nested more than 128 levels deep");
  EXPECT_EQ(almc_snapshot_parse(r.h, nested.data(), nested.size()), ALMC_ERR_PARSE);
  EXPECT_EQ(almc_snapshot_set(r.h, kept.state.data(), kept.state.size(), deep.c_str()), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r.err(), "run: JSON nested more than 128 levels deep");
  EXPECT_EQ(almc_snapshot_check_run(r.h, deep.c_str()), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r.state(), kept.state);

  EXPECT_EQ(almc_snapshot_read(r.h, (dir + "/missing.snap").c_str()), ALMC_ERR_IO);
  EXPECT_NE(r.err().find("missing.snap"), std::string::npos) << r.err();
  EXPECT_EQ(almc_snapshot_read(r.h, dir.c_str()), ALMC_ERR_IO);  // a directory
  // Bytes that are neither a container nor a state (from memory as from a file); a state refused by
  // its header.
  const std::vector<unsigned char> zeros(4096, 0);
  EXPECT_EQ(almc_snapshot_parse(r.h, zeros.data(), zeros.size()), ALMC_ERR_PARSE);
  EXPECT_EQ(r.err(), "not an almc snapshot (written by almc sample --snapshot or the Python package) nor a sampler state");
  EXPECT_EQ(almc_snapshot_set(r.h, zeros.data(), zeros.size(), nullptr), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_snapshot_set(r.h, kept.state.data(), kept.state.size(), "{not json"), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r.err(), "run is not valid JSON");
  // An empty snapshot has nothing to give or write; a directory is never written over.
  Snap e;
  EXPECT_EQ(almc_snapshot_state(e.h, nullptr, nullptr, nullptr, nullptr), ALMC_ERR_WRONG_STATE);
  EXPECT_EQ(almc_snapshot_write(e.h, path.c_str()), ALMC_ERR_WRONG_STATE);
  EXPECT_STREQ(almc_snapshot_run(e.h), "null");
  EXPECT_EQ(almc_snapshot_write(w.h, dir.c_str()), ALMC_ERR_IO);  // a directory is never replaced
  EXPECT_EQ(almc_snapshot_create(nullptr), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_snapshot_read(nullptr, path.c_str()), ALMC_ERR_NULL_POINTER);
  almc_snapshot_destroy(nullptr);
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

// A bare state cut short by a byte was held (ALMC_OK from almc_snapshot_read and _parse), and
// almc_snapshot_write then wrapped it in a container with a valid digest of the damaged bytes.
// Its header gives its size: a bare state of another size is refused as damaged, from a file, from
// memory and given to almc_snapshot_set, and what the handle held is kept. Garbage bytes were
// ALMC_ERR_PARSE from a file but ALMC_ERR_INVALID_ARGUMENT from memory; both are ALMC_ERR_PARSE.
TEST(SnapshotFile, BareStatesOfAnotherSizeThanTheirHeaderAreRefused) {
  Problem p;
  Kept kept;
  samples(p, nullptr, &kept);
  const std::string dir = temp_dir(), path = dir + "/bare.state", out = dir + "/out.snap";
  const std::string state(kept.state.begin(), kept.state.end());
  Snap r;
  ASSERT_EQ(almc_snapshot_parse(r.h, state.data(), state.size()), ALMC_OK) << r.err();
  const std::string said = std::to_string(state.size()) + ")";
  const size_t header = 144;  // StateHeader: 18 fields of 8 bytes
  ASSERT_GT(state.size(), header + 4);
  for (const std::string& bad : {state.substr(0, state.size() - 1), state.substr(0, header + 4), state.substr(0, header),
                                 state.substr(0, header - 1), state.substr(0, 12), state + "x", state + std::string(4, '\0')}) {
    const std::string why =
        bad.size() < header ? "the state is truncated (" + std::to_string(bad.size()) + " bytes, shorter than its header of 144)"
                            : "the state is truncated or padded (" + std::to_string(bad.size()) + " bytes, its header says " + said;
    EXPECT_EQ(almc_snapshot_parse(r.h, bad.data(), bad.size()), ALMC_ERR_PARSE) << bad.size();
    EXPECT_EQ(r.err(), why);
    put(path, bad);
    EXPECT_EQ(almc_snapshot_read(r.h, path.c_str()), ALMC_ERR_PARSE) << bad.size();
    EXPECT_EQ(r.err(), path + ": " + why);
    EXPECT_EQ(almc_snapshot_set(r.h, bad.data(), bad.size(), nullptr), ALMC_ERR_PARSE) << bad.size();
    EXPECT_EQ(r.state(), kept.state);  // the whole state is still the one held
  }
  // Nothing damaged reaches a file: the state held is written, whole.
  ASSERT_EQ(almc_snapshot_write(r.h, out.c_str()), ALMC_OK) << r.err();
  Snap back;
  ASSERT_EQ(almc_snapshot_read(back.h, out.c_str()), ALMC_OK) << back.err();
  EXPECT_EQ(back.state(), kept.state);
  // A header whose buffer counts are absurd is damaged too (no overflow in adding them up).
  std::string huge = state;
  const int64_t absurd = INT64_MAX;
  std::memcpy(&huge[120], &absurd, sizeof absurd);  // the header's x_floats (after 15 fields of 8 bytes)
  EXPECT_EQ(almc_snapshot_parse(r.h, huge.data(), huge.size()), ALMC_ERR_PARSE);
  EXPECT_NE(r.err().find("the state's header is damaged"), std::string::npos) << r.err();
  // The same garbage from memory and from a file: the same status and message.
  const std::string junk = "this is not a snapshot at all";
  put(path, junk);
  EXPECT_EQ(almc_snapshot_read(r.h, path.c_str()), ALMC_ERR_PARSE);
  const std::string from_file = r.err();
  EXPECT_EQ(almc_snapshot_parse(r.h, junk.data(), junk.size()), ALMC_ERR_PARSE);
  EXPECT_EQ(path + ": " + r.err(), from_file);
  EXPECT_EQ(r.state(), kept.state);
  std::remove(path.c_str());
  std::remove(out.c_str());
  rmdir(dir.c_str());
}

}  // namespace
