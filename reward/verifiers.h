#ifndef GRAIL_REWARD_VERIFIERS_H_
#define GRAIL_REWARD_VERIFIERS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grail::reward {

// The final answer in a response: the content of the last \boxed{...}, else the text after
// the last "####" (GSM8K), else the last number in the text. nullopt if none.
std::optional<std::string> ExtractAnswer(absl::string_view response);

// An exact rational number parsed from "42", "-3.50", "1,234", "3/4", "\frac{3}{4}",
// "$12", "7." (nullopt if the text is not a number or does not fit in 64 bits).
struct Rational {
  __int128 num = 0;
  __int128 den = 1;  // > 0, reduced
  bool operator==(const Rational& o) const { return num == o.num && den == o.den; }
};
std::optional<Rational> ParseNumber(absl::string_view text);

// True if the two answers are the same number, or (when either is not a number) the same
// text after trimming, lower-casing and removing spaces.
bool AnswersEquivalent(absl::string_view a, absl::string_view b);

// Math verifier: 1 if the response's extracted answer equals `reference`, else 0.
struct Verdict {
  double score = 0;
  bool correct = false;
};
Verdict VerifyMath(absl::string_view response, absl::string_view reference);

// Format check: 1 if the answer is marked explicitly (\boxed{} or ####), else 0.
Verdict VerifyFormat(absl::string_view response);

// IFEval-style constraints given as a JSON object with any of: "min_words", "max_words"
// (int), "keyword" (string that must appear), "forbidden_char" (string whose characters
// must not appear), "json" (true: the response must parse as JSON), "ends_with" (string).
// Score is the fraction of constraints met; correct when all are. INVALID_ARGUMENT naming
// the constraint for malformed JSON or unknown keys.
absl::StatusOr<Verdict> VerifyConstraints(absl::string_view response, absl::string_view constraints_json);

// DAPO soft overlong punishment: 0 up to max_len - buffer, then falling linearly to
// -factor at max_len (and below it beyond).
double OverlongPenalty(int response_length, int max_response_length, int buffer_length,
                       double penalty_factor);

}  // namespace grail::reward

#endif  // GRAIL_REWARD_VERIFIERS_H_
