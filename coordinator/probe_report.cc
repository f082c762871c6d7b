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
std::vector<double> CumulativeSteps(const std::vector<grail::v1::ProbeRecord>& records) {
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

// One panel at (left, top): for each response type, a line through the mean over probes at
// each step and a band of one standard error, on the panel's own scale.
void Panel(const std::vector<const grail::v1::ProbeRecord*>& records, double (*value)(const grail::v1::ProbeRecord&),
           const std::string& y_label, const std::string& title, double left, double top, double width,
           double height, std::string* svg) {
  std::map<std::string, std::map<double, std::vector<double>>> series;
  for (const auto* r : records) series[r->response_type()][static_cast<double>(r->step())].push_back(value(*r));
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  std::map<std::string, std::vector<std::pair<double, Stats>>> points;
  for (const auto& [type, by_x] : series) {
    for (const auto& [x, values] : by_x) {
      const Stats s = MeanAndSe(values);
      points[type].push_back({x, s});
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, s.mean - s.se);
      y_max = std::max(y_max, s.mean + s.se);
    }
  }
  if (!std::isfinite(x_min)) x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  if (x_max - x_min < 1e-9) x_max = x_min + 1;
  if (y_max - y_min < 1e-9) y_min -= 0.5, y_max += 0.5;
  auto px = [&](double x) { return left + width * (x - x_min) / (x_max - x_min); };
  auto py = [&](double y) { return top + height - height * (y - y_min) / (y_max - y_min); };
  absl::StrAppend(svg, absl::StrFormat(
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n",
                           left, top, width, height));
  if (!title.empty()) {
    absl::StrAppend(svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
                                         left + width / 2, top - 6, Escape(title)));
  }
  if (!y_label.empty()) {
    absl::StrAppend(svg, absl::StrFormat("<text x=\"14\" y=\"%.1f\" font-size=\"12\" transform=\"rotate(-90 14 %.1f)\" "
                                         "text-anchor=\"middle\">%s</text>\n",
                                         top + height / 2, top + height / 2, Escape(y_label)));
  }
  for (double y : {y_min, (y_min + y_max) / 2, y_max}) {
    absl::StrAppend(svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n",
                                         left - 4, py(y) + 3, y));
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
  absl::StrAppend(svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">step %.0f</text>\n"
                                       "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.0f</text>\n",
                                       left, top + height + 13, x_min, left + width, top + height + 13, x_max));
}

double LogProb(const grail::v1::ProbeRecord& r) { return r.log_prob(); }

}  // namespace

std::string ProbesCsv(const std::vector<grail::v1::ProbeRecord>& records) {
  std::string out =
      "stage,step,x,probe,response_type,variant,log_prob,tokens,mean_token_log_prob,mean_argmax_prob,"
      "token_log_probs,argmax_probs\n";
  const std::vector<double> xs = CumulativeSteps(records);
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
  // One column per stage (in the order they first appear), each on its own scale: a stage
  // from scratch moves log-probs by tens of nats, a preference stage by a few.
  std::vector<std::string> stages;
  std::map<std::string, std::vector<const grail::v1::ProbeRecord*>> by_stage;
  for (const auto& r : records) {
    if (!by_stage.count(r.stage())) stages.push_back(r.stage());
    by_stage[r.stage()].push_back(&r);
  }
  constexpr double kLeft = 80, kPanelWidth = 300, kGap = 60, kPanelHeight = 200, kTop = 60;
  const double legend = kLeft + stages.size() * (kPanelWidth + kGap);
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      legend + 190, kTop + 2 * kPanelHeight + 90);
  absl::StrAppend(&svg, absl::StrFormat("<text x=\"%.1f\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">%s</text>\n",
                                        legend / 2, Escape(title)));
  for (size_t i = 0; i < stages.size(); ++i) {
    const double left = kLeft + i * (kPanelWidth + kGap);
    const std::string name = stages[i].empty() ? "run" : absl::StrCat("stage ", stages[i]);
    Panel(by_stage[stages[i]], &LogProb, i == 0 ? "summed log-prob" : "", name, left, kTop, kPanelWidth, kPanelHeight,
          &svg);
    Panel(by_stage[stages[i]], &MeanArgmax, i == 0 ? "argmax-token probability" : "", "", left,
          kTop + kPanelHeight + 40, kPanelWidth, kPanelHeight, &svg);
  }
  // The legend: one entry per response type present.
  std::map<std::string, bool> types;
  for (const auto& r : records) types[r.response_type()] = true;
  double y = kTop + 10;
  for (const auto& [type, unused] : types) {
    absl::StrAppend(&svg, absl::StrFormat("<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/>\n", legend,
                                          y - 4, Colour(type)));
    absl::StrAppend(&svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>\n", legend + 19, y,
                                          Escape(type)));
    y += 18;
  }
  absl::StrAppend(&svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#777\">mean over probes,</text>\n"
                                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#777\">band: 1 standard error</text>\n",
                                        legend, y + 6, legend, y + 19));
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

void ProbesPage(std::vector<grail::v1::ProbeRecord> records, int64_t offset, size_t page_bytes,
                grail::v1::GetProbesResponse* page) {
  const int64_t total = static_cast<int64_t>(records.size());
  int64_t next = std::clamp<int64_t>(offset, 0, total);
  size_t bytes = 0;
  while (next < total && (bytes == 0 || bytes + records[next].ByteSizeLong() <= page_bytes)) {
    bytes += records[next].ByteSizeLong();
    *page->add_probes() = std::move(records[next++]);
  }
  page->set_next_offset(next);
  page->set_done(next == total);
}

}  // namespace grail::coordinator
