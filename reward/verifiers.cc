#include "reward/verifiers.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace grail::reward {
namespace {

__int128 Gcd(__int128 a, __int128 b) {
  if (a < 0) a = -a;
  while (b != 0) {
    __int128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

std::optional<Rational> Make(__int128 num, __int128 den) {
  if (den == 0) return std::nullopt;
  if (den < 0) num = -num, den = -den;
  __int128 g = Gcd(num, den);
  if (g > 1) num /= g, den /= g;
  return Rational{num, den};
}

// Parses an unsigned decimal with an optional fraction part ("12", "12.50", ".5").
std::optional<Rational> ParseDecimal(absl::string_view s) {
  if (s.empty()) return std::nullopt;
  __int128 num = 0, den = 1;
  bool digits = false, point = false;
  constexpr __int128 kLimit = static_cast<__int128>(1) << 100;
  for (char c : s) {
    if (c == '.' && !point) {
      point = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    digits = true;
    num = num * 10 + (c - '0');
    if (point) den *= 10;
    if (num > kLimit || den > kLimit) return std::nullopt;
  }
  if (!digits) return std::nullopt;
  return Make(num, den);
}

std::string Normalize(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

std::optional<std::string> ExtractAnswer(absl::string_view response) {
  const size_t boxed = response.rfind("\\boxed{");
  if (boxed != absl::string_view::npos) {
    int depth = 1;
    const size_t start = boxed + 7;
    for (size_t i = start; i < response.size(); ++i) {
      if (response[i] == '{') ++depth;
      if (response[i] == '}' && --depth == 0) {
        return std::string(absl::StripAsciiWhitespace(response.substr(start, i - start)));
      }
    }
    return std::nullopt;  // unbalanced braces: no well-formed answer
  }
  const size_t hashes = response.rfind("####");
  if (hashes != absl::string_view::npos) {
    std::string tail(absl::StripAsciiWhitespace(response.substr(hashes + 4)));
    if (tail.empty()) return std::nullopt;
    const size_t nl = tail.find('\n');
    return nl == std::string::npos ? tail : std::string(absl::StripAsciiWhitespace(tail.substr(0, nl)));
  }
  // RE2 matches in linear time without recursion, so a response of any length up to the
  // message limit is safe (std::regex recursed per character and overflowed the stack).
  static const RE2 kNumber(R"((-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+))");
  re2::StringPiece input(response.data(), response.size());
  re2::StringPiece match;
  std::optional<std::string> last;
  while (RE2::FindAndConsume(&input, kNumber, &match)) {
    last = std::string(match.data(), match.size());
  }
  return last;
}

std::optional<Rational> ParseNumber(absl::string_view text) {
  std::string s(absl::StripAsciiWhitespace(text));
  // Units and decorations that do not change the value.
  s = absl::StrReplaceAll(s, {{"$", ""}, {"\\!", ""}, {"\\,", ""}, {" ", ""}, {"\\%", ""}, {"%", ""}});
  while (!s.empty() && s.back() == '.') s.pop_back();
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  static const RE2 kFrac(R"(\\d?frac\{([0-9.,]+)\}\{([0-9.,]+)\})");
  static const RE2 kThousands(R"(\d{1,3}(?:,\d{3})+(?:\.\d+)?)");
  auto decimal_with_separators = [](const std::string& d) -> std::optional<Rational> {
    if (d.find(',') != std::string::npos) {
      if (!RE2::FullMatch(d, kThousands)) return std::nullopt;
      return ParseDecimal(absl::StrReplaceAll(d, {{",", ""}}));
    }
    return ParseDecimal(d);
  };
  std::optional<Rational> value;
  std::string numerator, denominator;
  if (RE2::FullMatch(s, kFrac, &numerator, &denominator)) {
    auto a = decimal_with_separators(numerator), b = decimal_with_separators(denominator);
    if (a && b && b->num != 0) value = Make(a->num * b->den, a->den * b->num);
  } else if (const size_t slash = s.find('/'); slash != std::string::npos) {
    auto a = decimal_with_separators(s.substr(0, slash)), b = decimal_with_separators(s.substr(slash + 1));
    if (a && b && b->num != 0) value = Make(a->num * b->den, a->den * b->num);
  } else {
    value = decimal_with_separators(s);
  }
  if (value && negative) value->num = -value->num;
  return value;
}

bool AnswersEquivalent(absl::string_view a, absl::string_view b) {
  auto x = ParseNumber(a), y = ParseNumber(b);
  if (x && y) return *x == *y;
  return Normalize(a) == Normalize(b) && !Normalize(a).empty();
}

Verdict VerifyMath(absl::string_view response, absl::string_view reference) {
  Verdict v;
  auto answer = ExtractAnswer(response);
  if (answer && AnswersEquivalent(*answer, reference)) {
    v.score = 1;
    v.correct = true;
  }
  return v;
}

Verdict VerifyFormat(absl::string_view response) {
  Verdict v;
  const bool marked = absl::StrContains(response, "\\boxed{") || absl::StrContains(response, "####");
  if (marked && ExtractAnswer(response)) {
    v.score = 1;
    v.correct = true;
  }
  return v;
}

absl::StatusOr<Verdict> VerifyConstraints(absl::string_view response, absl::string_view constraints_json) {
  nlohmann::json c = nlohmann::json::parse(constraints_json, nullptr, /*allow_exceptions=*/false);
  if (c.is_discarded() || !c.is_object()) {
    return absl::InvalidArgumentError("constraints_json: not a JSON object");
  }
  int met = 0, total = 0;
  size_t words = 0;
  bool in_word = false;
  for (char ch : response) {
    const bool space = std::isspace(static_cast<unsigned char>(ch));
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  for (auto it = c.begin(); it != c.end(); ++it) {
    const std::string& key = it.key();
    const auto& val = it.value();
    bool ok;
    if (key == "min_words" || key == "max_words") {
      if (!val.is_number_integer()) return absl::InvalidArgumentError(absl::StrCat("constraints_json.", key, ": must be an integer"));
      ok = key == "min_words" ? words >= val.get<size_t>() : words <= val.get<size_t>();
    } else if (key == "keyword" || key == "ends_with" || key == "forbidden_char") {
      if (!val.is_string()) return absl::InvalidArgumentError(absl::StrCat("constraints_json.", key, ": must be a string"));
      const std::string s = val.get<std::string>();
      if (key == "keyword") {
        ok = absl::StrContains(absl::AsciiStrToLower(response), absl::AsciiStrToLower(s));
      } else if (key == "ends_with") {
        ok = absl::EndsWith(absl::StripTrailingAsciiWhitespace(response), s);
      } else {
        ok = response.find_first_of(s) == absl::string_view::npos;
      }
    } else if (key == "json") {
      if (!val.is_boolean()) return absl::InvalidArgumentError("constraints_json.json: must be a boolean");
      const bool parses = !nlohmann::json::parse(response, nullptr, false).is_discarded();
      ok = parses == val.get<bool>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("constraints_json.", key, ": unknown constraint"));
    }
    ++total;
    met += ok;
  }
  Verdict v;
  v.score = total == 0 ? 1.0 : static_cast<double>(met) / total;
  v.correct = met == total;
  return v;
}

double OverlongPenalty(int response_length, int max_response_length, int buffer_length,
                       double penalty_factor) {
  if (buffer_length <= 0) return 0;
  const int expected = max_response_length - buffer_length;
  const double exceed = response_length - expected;
  return std::min(-exceed / buffer_length * penalty_factor, 0.0);
}

}  // namespace grail::reward
