#include "coordinator/probe_report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace grail::coordinator {
namespace {

double MeanArgmax(const grail::v1::ProbeRecord& r) {
  double sum = 0;
  for (float p : r.argmax_probs()) sum += p;
  return r.argmax_probs_size() > 0 ? sum / r.argmax_probs_size() : 0;
}

// The x position of each record: its step plus the last step of every stage before its
// own (stages in the order they first appear).
std::vector<double> CumulativeSteps(const std::vector<grail::v1::ProbeRecord>& records,
                                    std::vector<std::pair<double, std::string>>* boundaries) {
  std::vector<std::string> order;
  std::map<std::string, int64_t> last_step;
  for (const auto& r : records) {
    if (!last_step.count(r.stage())) order.push_back(r.stage());
    last_step[r.stage()] = std::max(last_step[r.stage()], r.step());
  }
  std::map<std::string, double> offset;
  double at = 0;
  for (const auto& s : order) {
    offset[s] = at;
    if (boundaries != nullptr) boundaries->push_back({at, s});
    at += static_cast<double>(last_step[s]);
  }
  std::vector<double> x;
  for (const auto& r : records) x.push_back(offset[r.stage()] + static_cast<double>(r.step()));
  return x;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

struct Stats {
  double mean = 0, se = 0;
};

Stats MeanAndSe(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.se = std::sqrt(ss / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()));
  }
  return s;
}

const char* Colour(const std::string& type) {
  static const std::map<std::string, const char*> colours = {
      {"chosen", "#1b9e77"},   {"chosen_paraphrase", "#66c2a5"}, {"rejected", "#d95f02"},
      {"rejected_paraphrase", "#fc8d62"}, {"unrelated", "#7570b3"}, {"greedy", "#e7298a"}};
  auto it = colours.find(type);
  return it == colours.end() ? "#666666" : it->second;
}

// One panel: for each response type, a line through the means at each x and a band of
// one standard error.
void Panel(const std::vector<grail::v1::ProbeRecord>& records, const std::vector<double>& xs,
           double (*value)(const grail::v1::ProbeRecord&), const std::string& label, double top, double height,
           const std::vector<std::pair<double, std::string>>& boundaries, std::string* svg) {
  constexpr double kLeft = 70, kWidth = 620;
  std::map<std::string, std::map<double, std::vector<double>>> series;
  for (size_t i = 0; i < records.size(); ++i) series[records[i].response_type()][xs[i]].push_back(value(records[i]));
  double x_max = 1, y_min = std::numeric_limits<double>::infinity(), y_max = -y_min;
  std::map<std::string, std::vector<std::pair<double, Stats>>> points;
  for (const auto& [type, by_x] : series) {
    for (const auto& [x, values] : by_x) {
      const Stats s = MeanAndSe(values);
      points[type].push_back({x, s});
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, s.mean - s.se);
      y_max = std::max(y_max, s.mean + s.se);
    }
  }
  if (!std::isfinite(y_min)) y_min = 0, y_max = 1;
  if (y_max - y_min < 1e-9) y_min -= 0.5, y_max += 0.5;
  auto px = [&](double x) { return kLeft + kWidth * x / x_max; };
  auto py = [&](double y) { return top + height - height * (y - y_min) / (y_max - y_min); };
  absl::StrAppend(svg, absl::StrFormat(
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n",
                           kLeft, top, kWidth, height));
  absl::StrAppend(svg, absl::StrFormat("<text x=\"12\" y=\"%.1f\" font-size=\"12\" transform=\"rotate(-90 12 %.1f)\" "
                                       "text-anchor=\"middle\">%s</text>\n",
                                       top + height / 2, top + height / 2, Escape(label)));
  for (double y : {y_min, (y_min + y_max) / 2, y_max}) {
    absl::StrAppend(svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n",
                                         kLeft - 4, py(y) + 3, y));
  }
  for (const auto& [x, stage] : boundaries) {
    absl::StrAppend(svg, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#bbb\" "
                                         "stroke-dasharray=\"4 3\"/>\n",
                                         px(x), top, px(x), top + height));
    if (!stage.empty()) {
      absl::StrAppend(svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#777\">%s</text>\n",
                                           px(x) + 3, top + 11, Escape(stage)));
    }
  }
  for (const auto& [type, pts] : points) {
    std::vector<std::string> upper, lower, line;
    for (const auto& [x, s] : pts) {
      upper.push_back(absl::StrFormat("%.1f,%.1f", px(x), py(s.mean + s.se)));
      lower.insert(lower.begin(), absl::StrFormat("%.1f,%.1f", px(x), py(s.mean - s.se)));
      line.push_back(absl::StrFormat("%.1f,%.1f", px(x), py(s.mean)));
    }
    absl::StrAppend(svg, absl::StrFormat("<polygon points=\"%s %s\" fill=\"%s\" fill-opacity=\"0.2\" stroke=\"none\"/>\n",
                                         absl::StrJoin(upper, " "), absl::StrJoin(lower, " "), Colour(type)));
    absl::StrAppend(svg, absl::StrFormat("<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                                         absl::StrJoin(line, " "), Colour(type)));
  }
  absl::StrAppend(svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">step %.0f</text>\n",
                                       kLeft + kWidth, top + height + 13, x_max));
}

double LogProb(const grail::v1::ProbeRecord& r) { return r.log_prob(); }

}  // namespace

std::string ProbesCsv(const std::vector<grail::v1::ProbeRecord>& records) {
  std::string out =
      "stage,step,x,probe,response_type,variant,log_prob,tokens,mean_token_log_prob,mean_argmax_prob,"
      "token_log_probs,argmax_probs\n";
  const std::vector<double> xs = CumulativeSteps(records, nullptr);
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const int n = r.token_log_probs_size();
    absl::StrAppend(&out, absl::StrFormat("%s,%d,%.0f,%d,%s,%d,%.6g,%d,%.6g,%.6g,%s,%s\n", r.stage(), r.step(), xs[i],
                                          r.probe(), r.response_type(), r.variant(), r.log_prob(), n,
                                          n > 0 ? r.log_prob() / n : 0.0, MeanArgmax(r),
                                          absl::StrJoin(r.token_log_probs(), ";"),
                                          absl::StrJoin(r.argmax_probs(), ";")));
  }
  return out;
}

std::string ProbesSvg(const std::vector<grail::v1::ProbeRecord>& records, const std::string& title) {
  std::vector<std::pair<double, std::string>> boundaries;
  const std::vector<double> xs = CumulativeSteps(records, &boundaries);
  constexpr double kPanel = 220;
  std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"560\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  absl::StrAppend(&svg, absl::StrFormat("<text x=\"380\" y=\"20\" font-size=\"14\" text-anchor=\"middle\">%s</text>\n",
                                        Escape(title)));
  Panel(records, xs, &LogProb, "summed log-prob", 40, kPanel, boundaries, &svg);
  Panel(records, xs, &MeanArgmax, "argmax-token probability", 40 + kPanel + 40, kPanel, boundaries, &svg);
  // The legend: one entry per response type present.
  std::map<std::string, bool> types;
  for (const auto& r : records) types[r.response_type()] = true;
  double y = 60;
  for (const auto& [type, unused] : types) {
    absl::StrAppend(&svg, absl::StrFormat("<rect x=\"705\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/>\n", y - 4,
                                          Colour(type)));
    absl::StrAppend(&svg, absl::StrFormat("<text x=\"724\" y=\"%.1f\" font-size=\"11\">%s</text>\n", y, Escape(type)));
    y += 18;
  }
  absl::StrAppend(&svg, absl::StrFormat("<text x=\"705\" y=\"%.1f\" font-size=\"10\" fill=\"#777\">mean over probes,</text>\n"
                                        "<text x=\"705\" y=\"%.1f\" font-size=\"10\" fill=\"#777\">band: 1 standard error</text>\n",
                                        y + 6, y + 19));
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

}  // namespace grail::coordinator
