#include "tokenizer/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <queue>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"

namespace grail::tokenizer {

namespace {

using json = nlohmann::json;

// ---- UTF-8 ------------------------------------------------------------------------------

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one (RFC 3629: no
// overlongs, no surrogates, at most U+10FFFF).
size_t ValidSequenceLength(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

// Where the first invalid UTF-8 byte is, or npos.
size_t FirstInvalidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = ValidSequenceLength(s, i);
    if (n == 0) return i;
    i += n;
  }
  return absl::string_view::npos;
}

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string Utf8Lossy(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = ValidSequenceLength(s, i);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    // The maximal prefix of a valid sequence that starts here (at least one byte).
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    if (need > 1) {
      unsigned char lo = 0x80, hi = 0xBF;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
      for (size_t k = 1; k < need && i + k < s.size(); ++k) {
        const unsigned char d = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
        ++len;
      }
    }
    out.append("\xEF\xBF\xBD");
    i += len;
  }
  return out;
}

// Splits a valid UTF-8 string into its characters.
std::vector<absl::string_view> Chars(absl::string_view s) {
  std::vector<absl::string_view> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = ValidSequenceLength(s, i);
    if (n == 0) n = 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// ---- Byte-level map (GPT-2) ---------------------------------------------------------------

struct ByteLevelMap {
  std::string byte_to_char[256];  // UTF-8 of the character standing for each byte
  absl::flat_hash_map<std::string, unsigned char> char_to_byte;
  ByteLevelMap() {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<uint32_t> cs(bs.begin(), bs.end());
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
        bs.push_back(b);
        cs.push_back(256 + n++);
      }
    }
    for (size_t i = 0; i < bs.size(); ++i) {
      std::string ch;
      AppendUtf8(cs[i], &ch);
      byte_to_char[bs[i]] = ch;
      char_to_byte[ch] = static_cast<unsigned char>(bs[i]);
    }
  }
};

const ByteLevelMap& ByteLevel() {
  static const ByteLevelMap* map = new ByteLevelMap();
  return *map;
}

// ---- Regex (PCRE2) ----------------------------------------------------------------------

class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat("pre_tokenizer regex '", pattern, "' at ", offset, ": ",
                                                     reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
    return std::unique_ptr<Regex>(new Regex(code));
  }
  ~Regex() { pcre2_code_free(code_); }

  // Appends to `out` the pieces of `text` with every match isolated (HF's Split with
  // behaviour Isolated): matches and the non-empty gaps between them, in order.
  void SplitIsolated(absl::string_view text, std::vector<std::string>* out) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0, gap_start = 0;
    while (pos <= text.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                                 PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t start = ov[0], end = ov[1];
      if (end == start) {  // an empty match: step one character
        pos = start + std::max<size_t>(1, start < text.size() ? ValidSequenceLength(text, start) : 1);
        continue;
      }
      if (start > gap_start) out->emplace_back(text.substr(gap_start, start - gap_start));
      out->emplace_back(text.substr(start, end - start));
      pos = gap_start = end;
    }
    if (gap_start < text.size()) out->emplace_back(text.substr(gap_start));
    pcre2_match_data_free(md);
  }

 private:
  explicit Regex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

// GPT-2's pattern, used by ByteLevel with use_regex.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct PreTokenizerStep {
  std::unique_ptr<Regex> split;  // Split (Isolated), or ByteLevel's regex
  bool byte_level = false;
  bool add_prefix_space = false;
};

struct AddedToken {
  int id;
  std::string content;
  bool special, lstrip, rstrip, single_word, normalized;
};

// One step of a decoder Sequence (the reference library's decode_chain).
struct DecodeStep {
  std::string type;  // Replace, ByteFallback, Fuse, Strip, Metaspace
  std::string from, to;  // Replace; Strip's content; Metaspace's replacement
  int start = 0, stop = 0;  // Strip
  bool prepend = true;      // Metaspace: prepend_scheme is not "never"
};

// The reference library's decode_chain for each step, then the tokens joined.
std::string DecodeChain(const std::vector<DecodeStep>& steps, std::vector<std::string> tokens) {
  for (const DecodeStep& step : steps) {
    if (step.type == "Replace") {
      for (auto& t : tokens) t = absl::StrReplaceAll(t, {{step.from, step.to}});
    } else if (step.type == "Fuse") {
      std::string all;
      for (const auto& t : tokens) all += t;
      tokens = {std::move(all)};
    } else if (step.type == "ByteFallback") {
      std::vector<std::string> out;
      std::string pending;  // bytes of consecutive <0xXX> tokens
      auto flush = [&] {
        if (pending.empty()) return;
        if (FirstInvalidUtf8(pending) == absl::string_view::npos) {
          out.push_back(pending);
        } else {
          for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
        }
        pending.clear();
      };
      for (auto& t : tokens) {
        if (t.size() == 6 && absl::StartsWith(t, "<0x") && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
            std::isxdigit(static_cast<unsigned char>(t[4]))) {
          pending.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          continue;
        }
        flush();
        out.push_back(std::move(t));
      }
      flush();
      tokens = std::move(out);
    } else if (step.type == "Strip") {
      for (auto& t : tokens) {
        size_t b = 0, e = t.size();
        for (int i = 0; i < step.start && b < e && absl::string_view(t).substr(b, step.from.size()) == step.from; ++i) {
          b += step.from.size();
        }
        for (int i = 0; i < step.stop && e >= b + step.from.size() &&
                        absl::string_view(t).substr(e - step.from.size(), step.from.size()) == step.from;
             ++i) {
          e -= step.from.size();
        }
        t = t.substr(b, e - b);
      }
    } else if (step.type == "Metaspace") {
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = absl::StrReplaceAll(tokens[i], {{step.from, i == 0 && step.prepend ? "" : " "}});
      }
    }
  }
  std::string text;
  for (const auto& t : tokens) text += t;
  return text;
}

struct TemplatePiece {
  bool is_sequence;  // $A, else a special token's ids
  std::vector<int> ids;
};

bool IsWordChar(absl::string_view ch) {
  if (ch.size() == 1) {
    const unsigned char c = static_cast<unsigned char>(ch[0]);
    return std::isalnum(c) || c == '_';
  }
  return true;  // non-ASCII letters count as word characters
}

bool IsWhitespaceChar(absl::string_view ch) {
  if (ch.size() == 1) return std::isspace(static_cast<unsigned char>(ch[0]));
  return ch == "\xC2\xA0" || ch == "\xE3\x80\x80";
}

}  // namespace

class HfTokenizer::Impl {
 public:
  absl::flat_hash_map<std::string, int> vocab;
  std::vector<std::string> id_to_token;
  absl::flat_hash_map<uint64_t, std::pair<int, int>> merges;  // (left id, right id) -> (rank, merged id)
  bool ignore_merges = false;
  bool nfc = false;
  // SentencePiece-style files (Llama-2, Mistral): normalizer steps after NFC, the Metaspace
  // pre-tokenizer, unknown characters as byte tokens <0xXX> (byte_fallback) or <unk>.
  std::vector<std::pair<std::string, std::string>> norm_steps;  // {"prepend", s} or {from, to}
  bool byte_fallback = false, fuse_unk = false;
  int unk = -1;
  bool metaspace = false, metaspace_split = true;
  std::string metaspace_char = "\xE2\x96\x81", metaspace_scheme = "always";
  std::vector<DecodeStep> decoders;  // the decoder Sequence, when it is not ByteLevel
  std::vector<PreTokenizerStep> pre;
  std::vector<AddedToken> added;  // longest first
  std::vector<int> added_by_first_byte[256];  // indices into `added`, longest first
  absl::flat_hash_map<int, size_t> added_by_id;
  std::vector<TemplatePiece> single_template;  // empty: no template
  bool decoder_byte_level = false;
  bool cleanup_spaces = false;
  int bos = -1, eos = -1, pad = -1;
  std::string chat_template, bos_text, eos_text;

  mutable absl::Mutex cache_mu;
  mutable absl::flat_hash_map<std::string, std::vector<int>> cache ABSL_GUARDED_BY(cache_mu);

  static uint64_t Key(int a, int b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

  absl::StatusOr<std::string> Normalize(absl::string_view text) const {
    auto s = NormalizeNfc(text);
    if (!s.ok() || norm_steps.empty()) return s;
    for (const auto& [from, to] : norm_steps) {
      if (from == "prepend") {
        if (!s->empty()) s->insert(0, to);
      } else {
        *s = absl::StrReplaceAll(*s, {{from, to}});
      }
    }
    return s;
  }

  absl::StatusOr<std::string> NormalizeNfc(absl::string_view text) const {
    if (!nfc || std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
      return std::string(text);
    }
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) return absl::InternalError("NFC normalizer unavailable");
    icu::UnicodeString out = n->normalize(icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), text.size())), status);
    if (U_FAILURE(status)) return absl::InternalError("NFC normalization failed");
    std::string s;
    out.toUTF8String(s);
    return s;
  }

  // BPE of one piece (byte-level characters, or text for SentencePiece-style files).
  void Bpe(const std::string& piece, std::vector<int>* out) const {
    const bool cacheable = piece.size() <= 256;
    if (cacheable) {
      absl::MutexLock lock(&cache_mu);
      auto it = cache.find(piece);
      if (it != cache.end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int> ids;
    auto whole = vocab.find(piece);
    if (ignore_merges && whole != vocab.end()) {
      ids.push_back(whole->second);
    } else {
      // Symbols as a linked list; a heap of candidate merges ordered by (rank, position).
      std::vector<int> sym;
      bool last_unknown = false;
      for (absl::string_view ch : Chars(piece)) {
        auto it = vocab.find(std::string(ch));
        if (it != vocab.end()) {
          sym.push_back(it->second);
          last_unknown = false;
          continue;
        }
        if (byte_fallback) {
          std::vector<int> bytes;
          for (unsigned char c : ch) {
            auto b = vocab.find(absl::StrFormat("<0x%02X>", c));
            if (b == vocab.end()) break;
            bytes.push_back(b->second);
          }
          if (bytes.size() == ch.size()) {
            sym.insert(sym.end(), bytes.begin(), bytes.end());
            last_unknown = false;
            continue;
          }
        }
        if (unk >= 0 && fuse_unk && last_unknown) continue;  // consecutive unknowns: one <unk>
        sym.push_back(unk);  // -1 (dropped) without an unk token
        last_unknown = true;
      }
      const int n = static_cast<int>(sym.size());
      std::vector<int> prev(n), next(n);
      for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
      using Cand = std::tuple<int, int, int, int>;  // rank, left pos, left id, right id
      std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
      auto push = [&](int i) {
        if (i < 0 || next[i] < 0 || sym[i] < 0 || sym[next[i]] < 0) return;
        auto m = merges.find(Key(sym[i], sym[next[i]]));
        if (m != merges.end()) heap.emplace(m->second.first, i, sym[i], sym[next[i]]);
      };
      for (int i = 0; i < n; ++i) push(i);
      while (!heap.empty()) {
        auto [rank, i, a, b] = heap.top();
        heap.pop();
        if (sym[i] != a || next[i] < 0 || sym[next[i]] != b) continue;  // stale
        const int j = next[i];
        sym[i] = merges.at(Key(a, b)).second;
        sym[j] = -2;  // removed
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        push(prev[i]);
        push(i);
      }
      for (int i = 0; i >= 0 && i < n; i = next[i]) {
        if (sym[i] >= 0) ids.push_back(sym[i]);
      }
    }
    out->insert(out->end(), ids.begin(), ids.end());
    if (!cacheable) return;
    absl::MutexLock lock(&cache_mu);
    if (cache.size() > 200000) cache.clear();
    cache.emplace(piece, std::move(ids));
  }

  // Pre-tokenizes and encodes text between added tokens; `first`: it starts the input.
  absl::Status EncodePlain(absl::string_view raw, bool first, std::vector<int>* out) const {
    std::vector<std::string> pieces = {std::string(raw)};
    if (metaspace) {
      std::string p = absl::StrReplaceAll(raw, {{" ", metaspace_char}});
      if (!absl::StartsWith(p, metaspace_char) &&
          (metaspace_scheme == "always" || (metaspace_scheme == "first" && first))) {
        p.insert(0, metaspace_char);
      }
      pieces.clear();
      if (!metaspace_split) {
        pieces.push_back(std::move(p));
      } else {  // each replacement character starts a piece
        size_t b = 0;
        for (size_t at = p.find(metaspace_char, 1); at != std::string::npos; at = p.find(metaspace_char, at + 1)) {
          pieces.push_back(p.substr(b, at - b));
          b = at;
        }
        pieces.push_back(p.substr(b));
      }
    }
    bool mapped = false;  // byte-level mapping done
    for (const auto& step : pre) {
      std::vector<std::string> next_pieces;
      for (auto& p : pieces) {
        if (step.byte_level && step.add_prefix_space && !absl::StartsWith(p, " ")) p.insert(p.begin(), ' ');
        if (step.split != nullptr) {
          step.split->SplitIsolated(p, &next_pieces);
        } else {
          next_pieces.push_back(std::move(p));
        }
      }
      pieces = std::move(next_pieces);
      if (step.byte_level) {
        const auto& map = ByteLevel();
        for (auto& p : pieces) {
          std::string m;
          m.reserve(p.size() * 2);
          for (unsigned char c : p) m += map.byte_to_char[c];
          p = std::move(m);
        }
        mapped = true;
      }
    }
    (void)mapped;  // without ByteLevel, pieces are text (SentencePiece-style vocabularies)
    for (const auto& p : pieces) {
      if (!p.empty()) Bpe(p, out);
    }
    return absl::OkStatus();
  }

  // Splits `text` on added tokens (those with `normalized` == `normalized_pass`), calling
  // `plain` for the text between them and emitting token ids.
  // Special tokens inside `literal` spans (offsets into `text`; may be null) stay text.
  absl::Status SplitAdded(absl::string_view text, bool normalized_pass, bool parse_special,
                          const std::vector<std::pair<size_t, size_t>>* literal,
                          const std::function<absl::Status(absl::string_view)>& plain,
                          std::vector<int>* out) const {
    auto in_literal = [literal](size_t b, size_t e) {
      if (literal == nullptr) return false;
      for (const auto& [lb, le] : *literal) {
        if (b < le && e > lb) return true;
      }
      return false;
    };
    size_t start = 0, i = 0;
    while (i < text.size()) {
      const AddedToken* hit = nullptr;
      for (int k : added_by_first_byte[static_cast<unsigned char>(text[i])]) {
        const AddedToken& t = added[k];
        if (t.normalized != normalized_pass || t.content.empty() || (t.special && !parse_special)) continue;
        if (text.compare(i, t.content.size(), t.content) != 0) continue;
        if (t.special && in_literal(i, i + t.content.size())) continue;
        if (t.single_word) {
          const bool left_ok = i == 0 || !IsWordChar(Chars(text.substr(0, i)).back());
          const size_t e = i + t.content.size();
          const bool right_ok = e >= text.size() || !IsWordChar(Chars(text.substr(e)).front());
          if (!left_ok || !right_ok) continue;
        }
        hit = &t;
        break;  // `added` is longest first
      }
      if (hit == nullptr) {
        i += std::max<size_t>(1, ValidSequenceLength(text, i));
        continue;
      }
      size_t left = i, right = i + hit->content.size();
      if (hit->lstrip) {
        while (left > start) {
          auto chars = Chars(text.substr(start, left - start));
          if (!IsWhitespaceChar(chars.back())) break;
          left -= chars.back().size();
        }
      }
      if (hit->rstrip) {
        while (right < text.size()) {
          auto ch = Chars(text.substr(right)).front();
          if (!IsWhitespaceChar(ch)) break;
          right += ch.size();
        }
      }
      if (left > start) {
        absl::Status s = plain(text.substr(start, left - start));
        if (!s.ok()) return s;
      }
      out->push_back(hit->id);
      start = i = right;
    }
    if (start < text.size()) return plain(text.substr(start));
    return absl::OkStatus();
  }
};

HfTokenizer::HfTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfTokenizer::~HfTokenizer() = default;

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::FromDir(const std::string& dir) {
  auto read = [](const std::string& path, bool required) -> absl::StatusOr<std::string> {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (required) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
      return std::string();
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  auto tok = read(dir + "/tokenizer.json", true);
  if (!tok.ok()) return tok.status();
  auto cfg = read(dir + "/tokenizer_config.json", false);
  if (!cfg.ok()) return cfg.status();
  return FromJson(*tok, *cfg);
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::FromJson(absl::string_view tokenizer_json,
                                                                   absl::string_view config_json) {
  // A field of an unexpected JSON type anywhere is an error, not a crash.
  try {
    return FromJsonUnchecked(tokenizer_json, config_json);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json or tokenizer_config.json: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::FromJsonUnchecked(absl::string_view tokenizer_json,
                                                                            absl::string_view config_json) {
  const json t = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (!t.is_object()) return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", what)); };
  auto impl = std::make_unique<Impl>();
  const json& model = t.value("model", json::object());
  if (model.value("type", "") != "BPE") return bad(absl::StrCat("model.type '", model.value("type", ""), "' is not supported (BPE)"));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && !(model[key].is_string() && model[key].get<std::string>().empty())) {
      return bad(absl::StrCat("model.", key, " is not supported"));
    }
  }
  impl->byte_fallback = model.value("byte_fallback", false);
  impl->fuse_unk = model.value("fuse_unk", false);
  if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("model.vocab is missing");
  int max_id = -1;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int>() < 0) return bad("model.vocab: ids must be >= 0");
    impl->vocab[it.key()] = it.value().get<int>();
    max_id = std::max(max_id, it.value().get<int>());
  }
  impl->ignore_merges = model.value("ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    auto u = impl->vocab.find(model["unk_token"].get<std::string>());
    if (u == impl->vocab.end()) return bad("model.unk_token is not in the vocabulary");
    impl->unk = u->second;
  }
  const json& merges = model.value("merges", json::array());
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string a, b;
    if (merges[r].is_string()) {
      const std::string m = merges[r].get<std::string>();
      const size_t sp = m.find(' ');
      if (sp == std::string::npos) return bad(absl::StrCat("model.merges[", r, "]: no space"));
      a = m.substr(0, sp), b = m.substr(sp + 1);
    } else if (merges[r].is_array() && merges[r].size() == 2 && merges[r][0].is_string() && merges[r][1].is_string()) {
      a = merges[r][0].get<std::string>(), b = merges[r][1].get<std::string>();
    } else {
      return bad(absl::StrCat("model.merges[", r, "]: neither \"a b\" nor [a, b]"));
    }
    auto ia = impl->vocab.find(a), ib = impl->vocab.find(b), im = impl->vocab.find(a + b);
    if (ia == impl->vocab.end() || ib == impl->vocab.end() || im == impl->vocab.end()) {
      return bad(absl::StrCat("model.merges[", r, "]: a token is not in the vocabulary"));
    }
    impl->merges.try_emplace(Impl::Key(ia->second, ib->second), static_cast<int>(r), im->second);
  }
  for (const auto& a : t.value("added_tokens", json::array())) {
    AddedToken tok{a.value("id", -1), a.value("content", ""), a.value("special", false), a.value("lstrip", false),
                   a.value("rstrip", false), a.value("single_word", false), a.value("normalized", false)};
    if (tok.id < 0 || tok.content.empty()) return bad("added_tokens: an entry without id or content");
    max_id = std::max(max_id, tok.id);
    impl->added.push_back(tok);
  }
  std::stable_sort(impl->added.begin(), impl->added.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
  impl->id_to_token.assign(max_id + 1, "");
  for (const auto& [token, id] : impl->vocab) impl->id_to_token[id] = token;
  for (size_t i = 0; i < impl->added.size(); ++i) {
    impl->id_to_token[impl->added[i].id] = impl->added[i].content;
    impl->added_by_id[impl->added[i].id] = i;
    impl->added_by_first_byte[static_cast<unsigned char>(impl->added[i].content[0])].push_back(static_cast<int>(i));
  }

  const json& norm = t.value("normalizer", json());
  std::vector<json> norms;
  if (norm.is_object() && norm.value("type", "") == "Sequence") {
    for (const auto& n : norm.value("normalizers", json::array())) norms.push_back(n);
  } else if (!norm.is_null()) {
    norms.push_back(norm);
  }
  for (const auto& n : norms) {
    const std::string type = n.value("type", "");
    if (type == "NFC") {
      if (!impl->norm_steps.empty()) return bad("normalizer: NFC after Prepend or Replace is not supported");
      impl->nfc = true;
    } else if (type == "Prepend") {
      impl->norm_steps.push_back({"prepend", n.value("prepend", "")});
    } else if (type == "Replace" && n.contains("pattern") && n["pattern"].contains("String")) {
      impl->norm_steps.push_back({n["pattern"]["String"].get<std::string>(), n.value("content", "")});
      if (impl->norm_steps.back().first.empty() || impl->norm_steps.back().first == "prepend") {
        return bad("normalizer Replace: an empty pattern");
      }
    } else {
      return bad(absl::StrCat("normalizer type '", type,
                              "' is not supported (NFC, Prepend, Replace with a String pattern, Sequence)"));
    }
  }
  const json& pre = t.value("pre_tokenizer", json());
  std::vector<json> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    for (const auto& s : pre.value("pretokenizers", json::array())) steps.push_back(s);
  } else if (!pre.is_null()) {
    steps.push_back(pre);
  }
  for (const auto& s : steps) {
    PreTokenizerStep step;
    const std::string type = s.value("type", "");
    if (type == "Split") {
      if (s.value("behavior", "") != "Isolated" || s.value("invert", false)) {
        return bad(absl::StrCat("pre_tokenizer Split behaviour '", s.value("behavior", ""), "' is not supported (Isolated)"));
      }
      const json& pattern = s.value("pattern", json::object());
      if (!pattern.contains("Regex")) return bad("pre_tokenizer Split: only Regex patterns are supported");
      auto re = Regex::Compile(pattern["Regex"].get<std::string>());
      if (!re.ok()) return re.status();
      step.split = std::move(*re);
    } else if (type == "ByteLevel") {
      step.byte_level = true;
      step.add_prefix_space = s.value("add_prefix_space", false);
      if (s.value("use_regex", true)) {
        auto re = Regex::Compile(kGpt2Pattern);
        if (!re.ok()) return re.status();
        step.split = std::move(*re);
      }
    } else if (type == "Metaspace" && steps.size() == 1) {
      impl->metaspace = true;
      impl->metaspace_char = s.value("replacement", impl->metaspace_char);
      impl->metaspace_split = s.value("split", true);
      impl->metaspace_scheme = s.contains("prepend_scheme") ? s.value("prepend_scheme", "always")
                               : s.value("add_prefix_space", true) ? "always" : "never";
      if (impl->metaspace_char.empty()) return bad("pre_tokenizer Metaspace: an empty replacement");
      continue;
    } else {
      return bad(absl::StrCat("pre_tokenizer type '", type, "' is not supported (Split, ByteLevel, Metaspace)"));
    }
    impl->pre.push_back(std::move(step));
  }
  const json& post = t.value("post_processor", json());
  std::vector<json> posts;
  if (post.is_object() && post.value("type", "") == "Sequence") {
    for (const auto& p : post.value("processors", json::array())) posts.push_back(p);
  } else if (!post.is_null()) {
    posts.push_back(post);
  }
  for (const auto& p : posts) {
    const std::string type = p.value("type", "");
    if (type == "ByteLevel") continue;  // offsets only
    if (type != "TemplateProcessing") return bad(absl::StrCat("post_processor type '", type, "' is not supported"));
    for (const auto& piece : p.value("single", json::array())) {
      if (piece.contains("Sequence")) {
        impl->single_template.push_back({true, {}});
      } else if (piece.contains("SpecialToken")) {
        const std::string name = piece["SpecialToken"].value("id", "");
        const json& sp = p.value("special_tokens", json::object());
        if (!sp.contains(name)) return bad(absl::StrCat("post_processor: special token '", name, "' has no ids"));
        impl->single_template.push_back({false, sp[name].value("ids", std::vector<int>{})});
      }
    }
  }
  const json& dec = t.value("decoder", json());
  if (dec.is_object() && dec.value("type", "") == "ByteLevel") {
    impl->decoder_byte_level = true;
  } else {
    std::vector<json> decs;
    if (dec.is_object() && dec.value("type", "") == "Sequence") {
      for (const auto& d : dec.value("decoders", json::array())) decs.push_back(d);
    } else if (!dec.is_null()) {
      decs.push_back(dec);
    }
    for (const auto& d : decs) {
      DecodeStep step;
      step.type = d.value("type", "");
      if (step.type == "Replace" && d.contains("pattern") && d["pattern"].contains("String")) {
        step.from = d["pattern"]["String"].get<std::string>();
        step.to = d.value("content", "");
        if (step.from.empty()) return bad("decoder Replace: an empty pattern");
      } else if (step.type == "Strip") {
        step.from = d.value("content", " ");
        step.start = d.value("start", 0);
        step.stop = d.value("stop", 0);
      } else if (step.type == "Metaspace") {
        step.from = d.value("replacement", "\xE2\x96\x81");
        step.prepend = d.contains("prepend_scheme") ? d.value("prepend_scheme", "always") != "never"
                                                    : d.value("add_prefix_space", true);
      } else if (step.type != "ByteFallback" && step.type != "Fuse") {
        return bad(absl::StrCat("decoder type '", step.type,
                                "' is not supported (ByteLevel, or a Sequence of Replace, ByteFallback, Fuse, Strip, "
                                "Metaspace)"));
      }
      impl->decoders.push_back(std::move(step));
    }
    if (impl->pre.empty() == false && std::any_of(impl->pre.begin(), impl->pre.end(),
                                                   [](const PreTokenizerStep& p) { return p.byte_level; })) {
      return bad("a ByteLevel pre_tokenizer needs the ByteLevel decoder");
    }
  }

  if (!config_json.empty()) {
    const json c = json::parse(config_json, nullptr, false);
    if (!c.is_object()) return absl::InvalidArgumentError("tokenizer_config.json: not a JSON object");
    impl->cleanup_spaces = c.value("clean_up_tokenization_spaces", false);
    auto token_of = [&](const char* key) -> int {
      if (!c.contains(key)) return -1;
      std::string s = c[key].is_string() ? c[key].get<std::string>()
                      : c[key].is_object() ? c[key].value("content", "") : "";
      if (s.empty()) return -1;
      for (const auto& a : impl->added) {
        if (a.content == s) return a.id;
      }
      auto it = impl->vocab.find(s);
      return it == impl->vocab.end() ? -1 : it->second;
    };
    if (c.contains("chat_template") && c["chat_template"].is_string()) impl->chat_template = c["chat_template"].get<std::string>();
    auto text_of = [&](const char* key) -> std::string {
      if (!c.contains(key)) return "";
      return c[key].is_string() ? c[key].get<std::string>() : c[key].is_object() ? c[key].value("content", "") : "";
    };
    impl->bos_text = text_of("bos_token");
    impl->eos_text = text_of("eos_token");
    impl->bos = token_of("bos_token");
    impl->eos = token_of("eos_token");
    impl->pad = token_of("pad_token");
  }
  if (impl->pad < 0) impl->pad = impl->eos >= 0 ? impl->eos : 0;
  return std::unique_ptr<HfTokenizer>(new HfTokenizer(std::move(impl)));
}

absl::StatusOr<std::vector<int>> HfTokenizer::Encode(absl::string_view text) const {
  return Encode(text, EncodeOptions{});
}

absl::StatusOr<std::vector<int>> HfTokenizer::Encode(absl::string_view text, const EncodeOptions& options) const {
  if (size_t bad = FirstInvalidUtf8(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("text[", bad, "]: invalid UTF-8"));
  }
  const Impl& m = *impl_;
  std::vector<int> ids;
  // Added tokens matched on the raw text first, then the rest normalized, then those
  // matched on normalized text, then the model.
  absl::Status s = m.SplitAdded(
      text, /*normalized_pass=*/false, options.parse_special_tokens, &options.literal_spans,
      [&](absl::string_view raw) -> absl::Status {
        const bool first = raw.data() == text.data();
        auto normalized = m.Normalize(raw);
        if (!normalized.ok()) return normalized.status();
        // Offsets into normalized pieces are not the input's: a literal span anywhere turns
        // off special tokens matched on normalized text.
        return m.SplitAdded(*normalized, /*normalized_pass=*/true,
                            options.parse_special_tokens && options.literal_spans.empty(), nullptr,
                            [&](absl::string_view plain) {
                              return m.EncodePlain(plain, first && plain.data() == normalized->data(), &ids);
                            },
                            &ids);
      },
      &ids);
  if (!s.ok()) return s;
  if (!options.add_special_tokens || m.single_template.empty()) return ids;
  std::vector<int> out;
  for (const auto& piece : m.single_template) {
    if (piece.is_sequence) {
      out.insert(out.end(), ids.begin(), ids.end());
    } else {
      out.insert(out.end(), piece.ids.begin(), piece.ids.end());
    }
  }
  return out;
}

std::string HfTokenizer::Decode(const std::vector<int>& ids) const {
  auto text = Decode(ids, /*skip_special_tokens=*/true);
  return text.ok() ? *text : std::string();
}

absl::StatusOr<std::string> HfTokenizer::Decode(const std::vector<int>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  const auto& map = ByteLevel();
  std::string bytes;
  std::vector<std::string> tokens;  // decoders other than ByteLevel work on token strings
  for (size_t k = 0; k < ids.size(); ++k) {
    const int id = ids[k];
    if (id < 0 || id >= static_cast<int>(m.id_to_token.size()) || m.id_to_token[id].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("ids[", k, "]: ", id, " is not in the vocabulary"));
    }
    if (skip_special_tokens && IsSpecial(id)) continue;
    const std::string& token = m.id_to_token[id];
    if (!m.decoder_byte_level) {
      tokens.push_back(token);
      continue;
    }
    // Each token's characters map back to bytes; a token with a character outside the
    // byte-level alphabet (an added token's text) contributes its own UTF-8.
    std::string t;
    bool all = true;
    for (absl::string_view ch : Chars(token)) {
      auto it = map.char_to_byte.find(std::string(ch));
      if (it == map.char_to_byte.end()) {
        all = false;
        break;
      }
      t.push_back(static_cast<char>(it->second));
    }
    bytes += all ? t : token;
  }
  std::string text = m.decoder_byte_level ? Utf8Lossy(bytes) : DecodeChain(m.decoders, std::move(tokens));
  if (m.cleanup_spaces) {
    // transformers' clean_up_tokenization: Python's str.replace, one pattern after another.
    for (const auto& [from, to] : std::vector<std::pair<const char*, const char*>>{
             {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
             {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}) {
      text = absl::StrReplaceAll(text, {{from, to}});
    }
  }
  return text;
}

int HfTokenizer::vocab_size() const { return static_cast<int>(impl_->id_to_token.size()); }
int HfTokenizer::pad_id() const { return impl_->pad; }
int HfTokenizer::bos_id() const { return impl_->bos; }
int HfTokenizer::eos_id() const { return impl_->eos; }

std::vector<int> HfTokenizer::stop_ids() const {
  std::vector<int> out;
  if (impl_->eos >= 0) out.push_back(impl_->eos);
  for (const char* t : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}) {
    const int id = TokenId(t);
    if (id >= 0 && IsSpecial(id) && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

int HfTokenizer::TokenId(absl::string_view token) const {
  for (const auto& a : impl_->added) {
    if (a.content == token) return a.id;
  }
  auto it = impl_->vocab.find(std::string(token));
  return it == impl_->vocab.end() ? -1 : it->second;
}

std::string HfTokenizer::TokenBytes(int id) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= static_cast<int>(m.id_to_token.size())) return "";
  const std::string& token = m.id_to_token[id];
  if (m.added_by_id.count(id)) return token;
  if (!m.decoder_byte_level) {
    if (m.byte_fallback && token.size() == 6 && absl::StartsWith(token, "<0x") && token[5] == '>') {
      return std::string(1, static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16)));
    }
    return token;  // the normalized text it spells (with the SentencePiece space mark)
  }
  const auto& map = ByteLevel();
  std::string bytes;
  for (absl::string_view ch : Chars(token)) {
    auto it = map.char_to_byte.find(std::string(ch));
    if (it == map.char_to_byte.end()) return token;
    bytes.push_back(static_cast<char>(it->second));
  }
  return bytes;
}

const std::string& HfTokenizer::chat_template() const { return impl_->chat_template; }
const std::string& HfTokenizer::bos_token() const { return impl_->bos_text; }
const std::string& HfTokenizer::eos_token() const { return impl_->eos_text; }

bool HfTokenizer::IsSpecial(int id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

absl::StatusOr<std::string> HfTokenizer::Normalize(absl::string_view text) const {
  if (size_t bad = FirstInvalidUtf8(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("text[", bad, "]: invalid UTF-8"));
  }
  return impl_->Normalize(text);
}

absl::StatusOr<std::string> DecodeStream::Next(int id) {
  window_.push_back(id);
  auto prefix = tokenizer_.Decode(std::vector<int>(window_.begin(), window_.begin() + context_), skip_special_tokens_);
  if (!prefix.ok()) return prefix.status();
  auto text = tokenizer_.Decode(window_, skip_special_tokens_);
  if (!text.ok()) {
    window_.pop_back();
    return text.status();
  }
  // An incomplete character decodes to U+FFFD at the end: wait for the rest.
  // (A character spans at most 4 byte tokens, after tokens that add nothing yet; a U+FFFD
  // still there after 16 pending tokens is real and goes out.)
  const size_t pending = window_.size() - context_;
  if (absl::EndsWith(*text, "\xEF\xBF\xBD") && pending < 16) return std::string();
  // A token that adds no text yet (a skipped special token, a space a decoder strips at the
  // start) stays pending, so the context keeps what it decodes against.
  if (text->size() <= prefix->size() && pending < 64) return std::string();
  std::string out = absl::StartsWith(*text, *prefix) ? text->substr(prefix->size()) : *text;
  window_.erase(window_.begin(), window_.begin() + context_);
  context_ = window_.size();
  return out;
}

}  // namespace grail::tokenizer
