#include "tokenizer/chat_template.h"

#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace grail::tokenizer {

namespace {

using json = nlohmann::ordered_json;

// ---- Values ---------------------------------------------------------------------------------

struct Value {
  enum Kind { kUndefined, kData, kNamespace } kind = kUndefined;
  json data;                                             // kData: none, bool, number, string, list, dict
  std::shared_ptr<std::map<std::string, Value>> ns;  // kNamespace
  std::string name;                                      // what an undefined value was called

  static Value Data(json j) {
    Value v;
    v.kind = kData;
    v.data = std::move(j);
    return v;
  }
  static Value Undefined(std::string name) {
    Value v;
    v.name = std::move(name);
    return v;
  }
  bool undefined() const { return kind == kUndefined; }
};

struct Error {
  int line;
  std::string message;
};

// ---- UTF-8 and Python string semantics --------------------------------------------------

std::vector<uint32_t> CodePoints(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    uint32_t cp;
    int n;
    if (c < 0x80) cp = c, n = 1;
    else if ((c >> 5) == 6) cp = c & 0x1F, n = 2;
    else if ((c >> 4) == 14) cp = c & 0x0F, n = 3;
    else cp = c & 0x07, n = 4;
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::string Utf8(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    const uint32_t cp = cps[i];
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

// Python's str.isspace.
bool PyIsSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// str.strip / lstrip / rstrip with Python's semantics (`chars` null: whitespace).
std::string PyStrip(const std::string& s, const std::string* chars, bool left, bool right) {
  const auto cps = CodePoints(s);
  std::vector<uint32_t> set;
  if (chars != nullptr) set = CodePoints(*chars);
  auto strip = [&](uint32_t c) {
    return chars == nullptr ? PyIsSpace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1])) --e;
  }
  return Utf8(cps, b, e);
}

json PySplit(const std::string& s, const std::string* sep) {
  json out = json::array();
  if (sep == nullptr) {
    const auto cps = CodePoints(s);
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && PyIsSpace(cps[i])) ++i;
      size_t j = i;
      while (j < cps.size() && !PyIsSpace(cps[j])) ++j;
      if (j > i) out.push_back(Utf8(cps, i, j));
      i = j;
    }
    return out;
  }
  size_t start = 0;
  while (true) {
    const size_t at = s.find(*sep, start);
    if (at == std::string::npos) break;
    out.push_back(s.substr(start, at - start));
    start = at + sep->size();
  }
  out.push_back(s.substr(start));
  return out;
}

std::string PyFloat(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e16) return absl::StrCat(static_cast<int64_t>(d), ".0");
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, r.ptr);
}

// json.dumps(x, ensure_ascii=False) with its default separators.
void PyJsonDump(const json& j, std::string* out) {
  switch (j.type()) {
    case json::value_t::null:
      *out += "null";
      break;
    case json::value_t::boolean:
      *out += j.get<bool>() ? "true" : "false";
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      *out += j.dump();
      break;
    case json::value_t::number_float:
      *out += PyFloat(j.get<double>());
      break;
    case json::value_t::string: {
      *out += '"';
      for (unsigned char c : j.get_ref<const std::string&>()) {
        switch (c) {
          case '"': *out += "\\\""; break;
          case '\\': *out += "\\\\"; break;
          case '\n': *out += "\\n"; break;
          case '\r': *out += "\\r"; break;
          case '\t': *out += "\\t"; break;
          case '\b': *out += "\\b"; break;
          case '\f': *out += "\\f"; break;
          default:
            if (c < 0x20) {
              char buf[8];
              snprintf(buf, sizeof(buf), "\\u%04x", c);
              *out += buf;
            } else {
              out->push_back(static_cast<char>(c));
            }
        }
      }
      *out += '"';
      break;
    }
    case json::value_t::array: {
      *out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) *out += ", ";
        first = false;
        PyJsonDump(e, out);
      }
      *out += ']';
      break;
    }
    case json::value_t::object: {
      *out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) *out += ", ";
        first = false;
        PyJsonDump(json(it.key()), out);
        *out += ": ";
        PyJsonDump(it.value(), out);
      }
      *out += '}';
      break;
    }
    default:
      *out += "null";
  }
}

// ---- Expressions -------------------------------------------------------------------------

struct Expr {
  enum Op { kLiteral, kName, kAttr, kItem, kSlice, kCall, kFilter, kTest, kUnary, kBinary, kAnd, kOr, kNot,
            kCond, kList, kDict } op;
  int line = 0;
  json literal;
  std::string name;  // name, attribute, filter, test, method, operator
  std::vector<std::unique_ptr<Expr>> args;  // operands / arguments
  std::vector<std::string> kwarg_names;     // for calls: names of the trailing keyword args
  bool negate = false;                      // "is not"
  std::vector<bool> slice_present;          // kSlice: which of start/stop/step are given
};
using ExprPtr = std::unique_ptr<Expr>;

struct Token {
  enum Kind { kName, kString, kInt, kFloat, kOp, kEnd } kind;
  std::string text;
  json value;
};

class ExprParser {
 public:
  ExprParser(const std::string& src, int line) : line_(line) { Lex(src); }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  ExprPtr ParseExpression() {
    ExprPtr e = ParseOr();
    if (!e) return nullptr;
    if (AcceptName("if")) {  // conditional expression
      auto c = Make(Expr::kCond);
      ExprPtr cond = ParseOr();
      ExprPtr other;
      if (AcceptName("else")) other = ParseExpression();
      else other = MakeLiteral(json());  // undefined-ish: renders empty
      if (!cond || !other) return nullptr;
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(other));
      return c;
    }
    return e;
  }

  bool AtEnd() const { return tokens_[pos_].kind == Token::kEnd; }
  const Token& Peek() const { return tokens_[pos_]; }
  bool AcceptName(const char* n) {
    if (tokens_[pos_].kind == Token::kName && tokens_[pos_].text == n) return ++pos_, true;
    return false;
  }
  bool AcceptOp(const char* o) {
    if (tokens_[pos_].kind == Token::kOp && tokens_[pos_].text == o) return ++pos_, true;
    return false;
  }
  std::string TakeName() {
    if (tokens_[pos_].kind != Token::kName) return Fail("expected a name"), "";
    return tokens_[pos_++].text;
  }
  void Fail(const std::string& why) {
    if (error_.empty()) error_ = why + (AtEnd() ? " at the end" : " near '" + tokens_[pos_].text + "'");
  }

 private:
  ExprPtr Make(Expr::Op op) {
    auto e = std::make_unique<Expr>();
    e->op = op;
    e->line = line_;
    return e;
  }
  ExprPtr MakeLiteral(json j) {
    auto e = Make(Expr::kLiteral);
    e->literal = std::move(j);
    return e;
  }

  void Lex(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
        tokens_.push_back({Token::kName, s.substr(i, j - i), json()});
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t j = i;
        bool is_float = false;
        while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == '_')) {
          if (s[j] == '.') {
            if (j + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[j + 1]))) break;
            is_float = true;
          }
          ++j;
        }
        const std::string num = s.substr(i, j - i);
        tokens_.push_back({is_float ? Token::kFloat : Token::kInt, num,
                           is_float ? json(std::stod(num)) : json(std::stoll(num))});
        i = j;
      } else if (c == '\'' || c == '"') {
        std::string out;
        size_t j = i + 1;
        while (j < s.size() && s[j] != c) {
          if (s[j] == '\\' && j + 1 < s.size()) {
            const char e = s[++j];
            switch (e) {
              case 'n': out += '\n'; break;
              case 't': out += '\t'; break;
              case 'r': out += '\r'; break;
              case '\\': out += '\\'; break;
              case '\'': out += '\''; break;
              case '"': out += '"'; break;
              default: out += '\\', out += e;
            }
            ++j;
          } else {
            out += s[j++];
          }
        }
        if (j >= s.size()) {
          error_ = "unterminated string";
          break;
        }
        tokens_.push_back({Token::kString, s.substr(i, j + 1 - i), json(out)});
        i = j + 1;
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".",
                                           ",", ":", "|", "+", "-", "*", "/", "%", "<", ">", "=", "~"};
        bool found = false;
        for (const char* op : kOps) {
          if (s.compare(i, strlen(op), op) == 0) {
            tokens_.push_back({Token::kOp, op, json()});
            i += strlen(op);
            found = true;
            break;
          }
        }
        if (!found) {
          error_ = absl::StrCat("unexpected character '", std::string(1, c), "'");
          break;
        }
      }
    }
    tokens_.push_back({Token::kEnd, "", json()});
  }

  ExprPtr ParseOr() {
    ExprPtr l = ParseAnd();
    while (l && AcceptName("or")) {
      auto e = Make(Expr::kOr);
      e->args.push_back(std::move(l));
      ExprPtr r = ParseAnd();
      if (!r) return nullptr;
      e->args.push_back(std::move(r));
      l = std::move(e);
    }
    return l;
  }
  ExprPtr ParseAnd() {
    ExprPtr l = ParseNot();
    while (l && AcceptName("and")) {
      auto e = Make(Expr::kAnd);
      e->args.push_back(std::move(l));
      ExprPtr r = ParseNot();
      if (!r) return nullptr;
      e->args.push_back(std::move(r));
      l = std::move(e);
    }
    return l;
  }
  ExprPtr ParseNot() {
    if (AcceptName("not")) {
      auto e = Make(Expr::kNot);
      ExprPtr x = ParseNot();
      if (!x) return nullptr;
      e->args.push_back(std::move(x));
      return e;
    }
    return ParseCompare();
  }
  ExprPtr ParseCompare() {
    ExprPtr l = ParseAdd();
    while (l) {
      std::string op;
      if (AcceptOp("==")) op = "==";
      else if (AcceptOp("!=")) op = "!=";
      else if (AcceptOp("<=")) op = "<=";
      else if (AcceptOp(">=")) op = ">=";
      else if (AcceptOp("<")) op = "<";
      else if (AcceptOp(">")) op = ">";
      else if (AcceptName("in")) op = "in";
      else if (Peek().kind == Token::kName && Peek().text == "not" && tokens_[pos_ + 1].kind == Token::kName &&
               tokens_[pos_ + 1].text == "in") {
        pos_ += 2;
        op = "not in";
      } else {
        break;
      }
      auto e = Make(Expr::kBinary);
      e->name = op;
      e->args.push_back(std::move(l));
      ExprPtr r = ParseAdd();
      if (!r) return nullptr;
      e->args.push_back(std::move(r));
      l = std::move(e);
    }
    return l;
  }
  ExprPtr ParseAdd() {
    ExprPtr l = ParseMul();
    while (l) {
      std::string op;
      if (AcceptOp("+")) op = "+";
      else if (AcceptOp("-")) op = "-";
      else if (AcceptOp("~")) op = "~";
      else break;
      auto e = Make(Expr::kBinary);
      e->name = op;
      e->args.push_back(std::move(l));
      ExprPtr r = ParseMul();
      if (!r) return nullptr;
      e->args.push_back(std::move(r));
      l = std::move(e);
    }
    return l;
  }
  ExprPtr ParseMul() {
    ExprPtr l = ParseUnary();
    while (l) {
      std::string op;
      if (AcceptOp("//")) op = "//";
      else if (AcceptOp("*")) op = "*";
      else if (AcceptOp("/")) op = "/";
      else if (AcceptOp("%")) op = "%";
      else break;
      auto e = Make(Expr::kBinary);
      e->name = op;
      e->args.push_back(std::move(l));
      ExprPtr r = ParseUnary();
      if (!r) return nullptr;
      e->args.push_back(std::move(r));
      l = std::move(e);
    }
    return l;
  }
  ExprPtr ParseUnary() {
    if (AcceptOp("-")) {
      auto e = Make(Expr::kUnary);
      e->name = "-";
      ExprPtr x = ParseUnary();
      if (!x) return nullptr;
      e->args.push_back(std::move(x));
      return e;
    }
    ExprPtr x = ParsePostfix(ParsePrimary());
    // Filters and tests bind tighter than the arithmetic around them.
    while (x) {
      if (AcceptOp("|")) {
        auto f = Make(Expr::kFilter);
        f->name = TakeName();
        f->args.push_back(std::move(x));
        if (AcceptOp("(") && !ParseArgs(f.get())) return nullptr;
        x = std::move(f);
      } else if (AcceptName("is")) {
        auto t = Make(Expr::kTest);
        t->negate = AcceptName("not");
        t->name = TakeName();
        t->args.push_back(std::move(x));
        if (AcceptOp("(") && !ParseArgs(t.get())) return nullptr;
        x = std::move(t);
      } else {
        break;
      }
    }
    return x;
  }
  // After "(": arguments up to ")".
  bool ParseArgs(Expr* call) {
    if (AcceptOp(")")) return true;
    while (true) {
      if (Peek().kind == Token::kName && tokens_[pos_ + 1].kind == Token::kOp && tokens_[pos_ + 1].text == "=") {
        call->kwarg_names.push_back(Peek().text);
        pos_ += 2;
      } else if (!call->kwarg_names.empty()) {
        Fail("a positional argument after keyword arguments");
        return false;
      }
      ExprPtr a = ParseExpression();
      if (!a) return false;
      call->args.push_back(std::move(a));
      if (AcceptOp(")")) return true;
      if (!AcceptOp(",")) {
        Fail("expected ',' or ')'");
        return false;
      }
    }
  }
  ExprPtr ParsePostfix(ExprPtr x) {
    while (x) {
      if (AcceptOp(".")) {
        auto a = Make(Expr::kAttr);
        a->name = TakeName();
        a->args.push_back(std::move(x));
        x = std::move(a);
      } else if (AcceptOp("[")) {
        ExprPtr parts[3];
        bool present[3] = {false, false, false};
        int colons = 0;
        while (true) {
          if (AcceptOp("]")) break;
          if (AcceptOp(":")) {
            if (++colons > 2) return Fail("too many ':' in a slice"), nullptr;
            continue;
          }
          parts[colons] = ParseExpression();
          if (!parts[colons]) return nullptr;
          present[colons] = true;
        }
        if (colons == 0) {
          if (!present[0]) return Fail("empty subscript"), nullptr;
          auto it = Make(Expr::kItem);
          it->args.push_back(std::move(x));
          it->args.push_back(std::move(parts[0]));
          x = std::move(it);
        } else {
          auto sl = Make(Expr::kSlice);
          sl->args.push_back(std::move(x));
          for (int k = 0; k < 3; ++k) {
            sl->slice_present.push_back(present[k]);
            sl->args.push_back(present[k] ? std::move(parts[k]) : MakeLiteral(json()));
          }
          x = std::move(sl);
        }
      } else if (AcceptOp("(")) {
        auto c = Make(Expr::kCall);
        c->args.push_back(std::move(x));
        if (!ParseArgs(c.get())) return nullptr;
        x = std::move(c);
      } else {
        break;
      }
    }
    return x;
  }
  ExprPtr ParsePrimary() {
    const Token& t = Peek();
    if (t.kind == Token::kString) {
      ++pos_;
      std::string s = t.value.get<std::string>();
      while (Peek().kind == Token::kString) s += tokens_[pos_++].value.get<std::string>();  // "a" "b"
      return MakeLiteral(json(s));
    }
    if (t.kind == Token::kInt || t.kind == Token::kFloat) {
      ++pos_;
      return MakeLiteral(t.value);
    }
    if (t.kind == Token::kName) {
      ++pos_;
      if (t.text == "true" || t.text == "True") return MakeLiteral(json(true));
      if (t.text == "false" || t.text == "False") return MakeLiteral(json(false));
      if (t.text == "none" || t.text == "None") return MakeLiteral(json());
      auto n = Make(Expr::kName);
      n->name = t.text;
      return n;
    }
    if (AcceptOp("(")) {
      ExprPtr e = ParseExpression();
      if (!e) return nullptr;
      if (!AcceptOp(")")) return Fail("expected ')'"), nullptr;
      return e;
    }
    if (AcceptOp("[")) {
      auto l = Make(Expr::kList);
      while (!AcceptOp("]")) {
        ExprPtr e = ParseExpression();
        if (!e) return nullptr;
        l->args.push_back(std::move(e));
        if (!AcceptOp(",") && !(Peek().kind == Token::kOp && Peek().text == "]")) return Fail("expected ','"), nullptr;
      }
      return l;
    }
    if (AcceptOp("{")) {
      auto d = Make(Expr::kDict);
      while (!AcceptOp("}")) {
        ExprPtr k = ParseExpression();
        if (!k || !AcceptOp(":")) return Fail("expected ':' in a dict"), nullptr;
        ExprPtr v = ParseExpression();
        if (!v) return nullptr;
        d->args.push_back(std::move(k));
        d->args.push_back(std::move(v));
        if (!AcceptOp(",") && !(Peek().kind == Token::kOp && Peek().text == "}")) return Fail("expected ','"), nullptr;
      }
      return d;
    }
    Fail("expected a value");
    return nullptr;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int line_;
  std::string error_;
};

}  // namespace

// ---- Statements ----------------------------------------------------------------------------

struct ChatTemplate::Node {
  enum Kind { kText, kOutput, kIf, kFor, kSet } kind;
  int line = 0;
  std::string text;                                   // kText
  ExprPtr expr;                                       // kOutput, kFor (iterable), kSet (value)
  std::vector<std::pair<ExprPtr, std::vector<std::unique_ptr<Node>>>> branches;  // kIf (null: else)
  std::vector<std::string> targets;                   // kFor: loop variables; kSet: name or ns, attr
  std::vector<std::unique_ptr<Node>> body, else_body;  // kFor
};

namespace {

using Node = ChatTemplate::Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

struct Chunk {
  enum Kind { kText, kVar, kBlock } kind;
  std::string text;
  int line;
};

// Splits the source into text, {{ }} and {% %} chunks with Jinja's whitespace rules
// (trim_blocks, lstrip_blocks, "-" modifiers, comments dropped).
absl::StatusOr<std::vector<Chunk>> Chunks(std::string src) {
  // Newlines normalized, and the single trailing newline dropped (keep_trailing_newline off).
  std::string norm;
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      norm += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      norm += src[i];
    }
  }
  if (!norm.empty() && norm.back() == '\n') norm.pop_back();
  std::vector<Chunk> out;
  size_t pos = 0;
  int line = 1;
  bool line_starting = true;
  bool strip_next = false;
  auto count_lines = [](const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); };
  while (pos <= norm.size()) {
    size_t start = std::string::npos;
    for (const char* open : {"{{", "{%", "{#"}) start = std::min(start, norm.find(open, pos));
    std::string text = norm.substr(pos, start == std::string::npos ? std::string::npos : start - pos);
    if (strip_next) {
      size_t k = 0;
      while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
      text = text.substr(k);
      strip_next = false;
    }
    if (start == std::string::npos) {
      if (!text.empty()) out.push_back({Chunk::kText, text, line});
      break;
    }
    const char kind = norm[start + 1];
    const char modifier = start + 2 < norm.size() ? norm[start + 2] : 0;
    if (modifier == '-') {
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    } else if (modifier != '+' && kind != '{') {  // lstrip_blocks: not for {{ }}
      const size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      if (l_pos > 0 || line_starting) {
        bool blank = l_pos < text.size();
        for (size_t k = l_pos; k < text.size(); ++k) blank &= std::isspace(static_cast<unsigned char>(text[k])) != 0;
        if (blank) text.resize(l_pos);
      }
    }
    const int text_line = line;
    line += count_lines(norm.substr(pos, start - pos));
    if (!text.empty()) out.push_back({Chunk::kText, text, text_line});
    const char* close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    const size_t end = norm.find(close, start + 2);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("chat_template line ", line, ": unclosed tag"));
    }
    size_t inner_begin = start + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
    size_t inner_end = end;
    bool strip_after = false;
    if (inner_end > inner_begin && norm[inner_end - 1] == '-') strip_after = true, --inner_end;
    std::string inner = norm.substr(inner_begin, inner_end - inner_begin);
    size_t after = end + 2;
    if (kind != '#') out.push_back({kind == '{' ? Chunk::kVar : Chunk::kBlock, inner, line});
    line += count_lines(norm.substr(start, after - start));
    // trim_blocks: the first newline after a block tag (or comment) goes.
    if (!strip_after && kind != '{' && after < norm.size() && norm[after] == '\n') {
      ++after;
      ++line;
    }
    line_starting = after > 0 && norm[after - 1] == '\n';
    strip_next = strip_after;
    pos = after;
  }
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

class Parser {
 public:
  explicit Parser(std::vector<Chunk> chunks) : chunks_(std::move(chunks)) {}

  // Parses nodes until one of `stops` (a block keyword) or the end; returns the stop word.
  absl::StatusOr<std::string> ParseBody(NodeList* out, const std::vector<std::string>& stops) {
    while (pos_ < chunks_.size()) {
      const Chunk& c = chunks_[pos_];
      if (c.kind == Chunk::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::kText;
        n->text = c.text;
        n->line = c.line;
        out->push_back(std::move(n));
        ++pos_;
        continue;
      }
      if (c.kind == Chunk::kVar) {
        ExprParser p(c.text, c.line);
        auto n = std::make_unique<Node>();
        n->kind = Node::kOutput;
        n->line = c.line;
        n->expr = p.ParseExpression();
        if (!n->expr || !p.AtEnd()) return Bad(c.line, p.ok() ? "trailing input in {{ }}" : p.error());
        out->push_back(std::move(n));
        ++pos_;
        continue;
      }
      const std::string stmt = Trim(c.text);
      const std::string word = stmt.substr(0, stmt.find_first_of(" \t\n("));
      if (std::find(stops.begin(), stops.end(), word) != stops.end()) return word;
      ++pos_;
      ExprParser p(stmt.substr(word.size()), c.line);
      auto n = std::make_unique<Node>();
      n->line = c.line;
      if (word == "if") {
        n->kind = Node::kIf;
        ExprPtr cond = p.ParseExpression();
        if (!cond || !p.AtEnd()) return Bad(c.line, p.ok() ? "trailing input after if" : p.error());
        std::string stop;
        while (true) {
          NodeList body;
          auto s = ParseBody(&body, {"elif", "else", "endif"});
          if (!s.ok()) return s.status();
          n->branches.emplace_back(std::move(cond), std::move(body));
          if (pos_ >= chunks_.size()) return Bad(c.line, "if without endif");
          const Chunk& at = chunks_[pos_++];
          if (*s == "endif") break;
          if (*s == "else") {
            cond = nullptr;
            NodeList rest;
            auto e = ParseBody(&rest, {"endif"});
            if (!e.ok()) return e.status();
            if (pos_ >= chunks_.size()) return Bad(c.line, "if without endif");
            ++pos_;
            n->branches.emplace_back(nullptr, std::move(rest));
            break;
          }
          ExprParser q(Trim(at.text).substr(4), at.line);  // elif
          cond = q.ParseExpression();
          if (!cond || !q.AtEnd()) return Bad(at.line, q.ok() ? "trailing input after elif" : q.error());
        }
      } else if (word == "for") {
        n->kind = Node::kFor;
        n->targets.push_back(p.TakeName());
        while (p.AcceptOp(",")) n->targets.push_back(p.TakeName());
        if (!p.AcceptName("in")) return Bad(c.line, "for without 'in'");
        n->expr = p.ParseExpression();
        if (!n->expr || !p.AtEnd()) return Bad(c.line, p.ok() ? "unsupported for loop (filters, recursive)" : p.error());
        auto s = ParseBody(&n->body, {"else", "endfor"});
        if (!s.ok()) return s.status();
        if (pos_ >= chunks_.size()) return Bad(c.line, "for without endfor");
        ++pos_;
        if (*s == "else") {
          auto e = ParseBody(&n->else_body, {"endfor"});
          if (!e.ok()) return e.status();
          if (pos_ >= chunks_.size()) return Bad(c.line, "for without endfor");
          ++pos_;
        }
      } else if (word == "set") {
        n->kind = Node::kSet;
        n->targets.push_back(p.TakeName());
        if (p.AcceptOp(".")) n->targets.push_back(p.TakeName());
        if (!p.AcceptOp("=")) return Bad(c.line, "block set ({% set x %}...{% endset %}) is not supported");
        n->expr = p.ParseExpression();
        if (!n->expr || !p.AtEnd()) return Bad(c.line, p.ok() ? "trailing input after set" : p.error());
      } else {
        return Bad(c.line, absl::StrCat("'{% ", word, " %}' is not supported"));
      }
      if (!p.ok()) return Bad(c.line, p.error());
      out->push_back(std::move(n));
    }
    if (!stops.empty()) return Bad(chunks_.empty() ? 1 : chunks_.back().line, absl::StrCat("missing {% ", stops.back(), " %}"));
    return std::string();
  }

 private:
  static absl::Status Bad(int line, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("chat_template line ", line, ": ", why));
  }
  std::vector<Chunk> chunks_;
  size_t pos_ = 0;
};

// ---- Evaluation -----------------------------------------------------------------------------

class Renderer {
 public:
  explicit Renderer(const json& vars) { scopes_.emplace_back(); for (auto it = vars.begin(); it != vars.end(); ++it) scopes_[0][it.key()] = Value::Data(it.value()); }

  bool Run(const NodeList& nodes, std::string* out) {
    for (const auto& n : nodes) {
      if (!RunNode(*n, out)) return false;
    }
    return true;
  }
  const Error& error() const { return error_; }

 private:
  bool Fail(int line, const std::string& msg) {
    if (!failed_) error_ = {line, msg}, failed_ = true;
    return false;
  }

  Value Lookup(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value::Undefined(name);
  }

  static bool Truthy(const Value& v) {
    if (v.kind == Value::kUndefined) return false;
    if (v.kind == Value::kNamespace) return true;
    const json& j = v.data;
    switch (j.type()) {
      case json::value_t::null: return false;
      case json::value_t::boolean: return j.get<bool>();
      case json::value_t::number_integer: case json::value_t::number_unsigned: return j.get<int64_t>() != 0;
      case json::value_t::number_float: return j.get<double>() != 0;
      case json::value_t::string: return !j.get_ref<const std::string&>().empty();
      default: return !j.empty();
    }
  }

  bool Str(const Value& v, int line, std::string* out) {
    if (v.kind == Value::kUndefined) return true;  // renders as ""
    if (v.kind == Value::kNamespace) return Fail(line, "cannot print a namespace");
    const json& j = v.data;
    switch (j.type()) {
      case json::value_t::null: *out += "None"; return true;
      case json::value_t::boolean: *out += j.get<bool>() ? "True" : "False"; return true;
      case json::value_t::number_integer: case json::value_t::number_unsigned: *out += j.dump(); return true;
      case json::value_t::number_float: *out += PyFloat(j.get<double>()); return true;
      case json::value_t::string: *out += j.get_ref<const std::string&>(); return true;
      default: return Fail(line, "printing a list or dict is not supported");
    }
  }

  bool RunNode(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::kText:
        *out += n.text;
        return true;
      case Node::kOutput: {
        Value v;
        if (!Eval(*n.expr, &v)) return false;
        return Str(v, n.line, out);
      }
      case Node::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            Value c;
            if (!Eval(*cond, &c)) return false;
            take = Truthy(c);
          }
          if (take) return Run(body, out);
        }
        return true;
      case Node::kSet: {
        Value v;
        if (!Eval(*n.expr, &v)) return false;
        if (n.targets.size() == 1) {
          scopes_.back()[n.targets[0]] = v;
          return true;
        }
        Value ns = Lookup(n.targets[0]);
        if (ns.kind != Value::kNamespace) return Fail(n.line, absl::StrCat("'", n.targets[0], "' is not a namespace"));
        (*ns.ns)[n.targets[1]] = v;
        return true;
      }
      case Node::kFor: {
        Value seq;
        if (!Eval(*n.expr, &seq)) return false;
        std::vector<json> items;
        if (seq.kind == Value::kData && seq.data.is_array()) {
          for (const auto& e : seq.data) items.push_back(e);
        } else if (seq.kind == Value::kData && seq.data.is_object()) {
          for (auto it = seq.data.begin(); it != seq.data.end(); ++it) items.push_back(json(it.key()));
        } else if (seq.kind == Value::kData && seq.data.is_string()) {
          const auto cps = CodePoints(seq.data.get<std::string>());
          for (size_t i = 0; i < cps.size(); ++i) items.push_back(json(Utf8(cps, i, i + 1)));
        } else if (seq.kind != Value::kUndefined) {
          return Fail(n.line, "for over a value that is not iterable");
        }
        if (items.empty()) return Run(n.else_body, out);
        const int64_t len = static_cast<int64_t>(items.size());
        for (int64_t i = 0; i < len; ++i) {
          scopes_.emplace_back();
          auto& scope = scopes_.back();
          if (n.targets.size() == 1) {
            scope[n.targets[0]] = Value::Data(items[i]);
          } else {
            if (!items[i].is_array() || items[i].size() != n.targets.size()) {
              scopes_.pop_back();
              return Fail(n.line, "cannot unpack the loop item");
            }
            for (size_t k = 0; k < n.targets.size(); ++k) scope[n.targets[k]] = Value::Data(items[i][k]);
          }
          scope["loop"] = Value::Data(json{{"index0", i}, {"index", i + 1}, {"first", i == 0}, {"last", i == len - 1},
                                           {"length", len}, {"revindex", len - i}, {"revindex0", len - i - 1}});
          const bool ok = Run(n.body, out);
          scopes_.pop_back();
          if (!ok) return false;
        }
        return true;
      }
    }
    return true;
  }

  static int64_t Index(int64_t i, int64_t size) { return i < 0 ? i + size : i; }

  bool GetAttr(const Value& obj, const std::string& key, Value* out) {
    if (obj.kind == Value::kNamespace) {
      auto it = obj.ns->find(key);
      *out = it == obj.ns->end() ? Value::Undefined(key) : it->second;
      return true;
    }
    if (obj.kind == Value::kData && obj.data.is_object()) {
      auto it = obj.data.find(key);
      *out = it == obj.data.end() ? Value::Undefined(key) : Value::Data(*it);
      return true;
    }
    *out = Value::Undefined(key);
    return true;
  }

  bool Eval(const Expr& e, Value* out) {
    switch (e.op) {
      case Expr::kLiteral:
        *out = Value::Data(e.literal);
        return true;
      case Expr::kName:
        *out = Lookup(e.name);
        return true;
      case Expr::kList: {
        json l = json::array();
        for (const auto& a : e.args) {
          Value v;
          if (!Eval(*a, &v)) return false;
          if (v.kind != Value::kData) return Fail(e.line, "a list item is undefined");
          l.push_back(v.data);
        }
        *out = Value::Data(l);
        return true;
      }
      case Expr::kDict: {
        json d = json::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k, v;
          if (!Eval(*e.args[i], &k) || !Eval(*e.args[i + 1], &v)) return false;
          if (k.kind != Value::kData || !k.data.is_string()) return Fail(e.line, "dict keys must be strings");
          d[k.data.get<std::string>()] = v.kind == Value::kData ? v.data : json();
        }
        *out = Value::Data(d);
        return true;
      }
      case Expr::kAttr: {
        Value obj;
        if (!Eval(*e.args[0], &obj)) return false;
        if (obj.undefined()) return Fail(e.line, absl::StrCat("'", obj.name, "' is undefined (reading .", e.name, ")"));
        return GetAttr(obj, e.name, out);
      }
      case Expr::kItem: {
        Value obj, key;
        if (!Eval(*e.args[0], &obj) || !Eval(*e.args[1], &key)) return false;
        if (obj.undefined()) return Fail(e.line, absl::StrCat("'", obj.name, "' is undefined (subscripted)"));
        if (key.kind == Value::kData && key.data.is_string()) return GetAttr(obj, key.data.get<std::string>(), out);
        if (obj.kind == Value::kData && key.kind == Value::kData && key.data.is_number_integer()) {
          if (obj.data.is_array()) {
            const int64_t i = Index(key.data.get<int64_t>(), obj.data.size());
            if (i < 0 || i >= static_cast<int64_t>(obj.data.size())) {
              *out = Value::Undefined("list item");
              return true;
            }
            *out = Value::Data(obj.data[i]);
            return true;
          }
          if (obj.data.is_string()) {
            const auto cps = CodePoints(obj.data.get<std::string>());
            const int64_t i = Index(key.data.get<int64_t>(), cps.size());
            if (i < 0 || i >= static_cast<int64_t>(cps.size())) return Fail(e.line, "string index out of range");
            *out = Value::Data(json(Utf8(cps, i, i + 1)));
            return true;
          }
        }
        *out = Value::Undefined("item");
        return true;
      }
      case Expr::kSlice: {
        Value obj;
        if (!Eval(*e.args[0], &obj)) return false;
        int64_t p[3] = {0, 0, 1};
        for (int k = 0; k < 3; ++k) {
          if (!e.slice_present[k]) continue;
          Value v;
          if (!Eval(*e.args[k + 1], &v)) return false;
          if (v.kind != Value::kData || !v.data.is_number_integer()) return Fail(e.line, "slice bounds must be integers");
          p[k] = v.data.get<int64_t>();
        }
        const int64_t step = p[2];
        if (step == 0) return Fail(e.line, "slice step cannot be zero");
        std::vector<json> items;
        bool is_string = false;
        std::vector<uint32_t> cps;
        if (obj.kind == Value::kData && obj.data.is_array()) {
          for (const auto& x : obj.data) items.push_back(x);
        } else if (obj.kind == Value::kData && obj.data.is_string()) {
          is_string = true;
          cps = CodePoints(obj.data.get<std::string>());
          for (size_t i = 0; i < cps.size(); ++i) items.push_back(json());
        } else {
          return Fail(e.line, "slicing a value that is not a list or string");
        }
        const int64_t n = static_cast<int64_t>(items.size());
        // Python's slice.indices.
        auto clamp = [&](int64_t v, bool present, bool is_start) {
          if (!present) return step > 0 ? (is_start ? int64_t{0} : n) : (is_start ? n - 1 : int64_t{-1});
          if (v < 0) v += n;
          if (step > 0) return std::min(std::max(v, int64_t{0}), n);
          return std::min(std::max(v, int64_t{-1}), n - 1);
        };
        const int64_t start = clamp(p[0], e.slice_present[0], true), stop = clamp(p[1], e.slice_present[1], false);
        json list = json::array();
        std::string s;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
          if (is_string) s += Utf8(cps, i, i + 1);
          else list.push_back(items[i]);
        }
        *out = Value::Data(is_string ? json(s) : list);
        return true;
      }
      case Expr::kAnd: {
        Value l;
        if (!Eval(*e.args[0], &l)) return false;
        if (!Truthy(l)) return *out = l, true;
        return Eval(*e.args[1], out);
      }
      case Expr::kOr: {
        Value l;
        if (!Eval(*e.args[0], &l)) return false;
        if (Truthy(l)) return *out = l, true;
        return Eval(*e.args[1], out);
      }
      case Expr::kNot: {
        Value v;
        if (!Eval(*e.args[0], &v)) return false;
        *out = Value::Data(json(!Truthy(v)));
        return true;
      }
      case Expr::kCond: {
        Value c;
        if (!Eval(*e.args[1], &c)) return false;
        return Eval(*e.args[Truthy(c) ? 0 : 2], out);
      }
      case Expr::kUnary: {
        Value v;
        if (!Eval(*e.args[0], &v)) return false;
        if (v.kind != Value::kData || !v.data.is_number()) return Fail(e.line, "unary '-' on a non-number");
        *out = Value::Data(v.data.is_number_integer() ? json(-v.data.get<int64_t>()) : json(-v.data.get<double>()));
        return true;
      }
      case Expr::kBinary:
        return Binary(e, out);
      case Expr::kTest:
        return Test(e, out);
      case Expr::kFilter:
        return Filter(e, out);
      case Expr::kCall:
        return Call(e, out);
    }
    return Fail(e.line, "unsupported expression");
  }

  bool Binary(const Expr& e, Value* out) {
    Value l, r;
    if (!Eval(*e.args[0], &l) || !Eval(*e.args[1], &r)) return false;
    const std::string& op = e.name;
    if (op == "==" || op == "!=") {
      bool eq;
      if (l.undefined() || r.undefined()) eq = l.undefined() && r.undefined();
      else if (l.kind != Value::kData || r.kind != Value::kData) eq = l.ns == r.ns;
      else if (l.data.is_number() && r.data.is_number()) eq = l.data.get<double>() == r.data.get<double>();
      else eq = l.data == r.data;
      *out = Value::Data(json(op == "==" ? eq : !eq));
      return true;
    }
    if (op == "in" || op == "not in") {
      bool in = false;
      if (r.kind == Value::kData && r.data.is_string() && l.kind == Value::kData && l.data.is_string()) {
        in = r.data.get_ref<const std::string&>().find(l.data.get_ref<const std::string&>()) != std::string::npos;
      } else if (r.kind == Value::kData && r.data.is_array() && l.kind == Value::kData) {
        for (const auto& x : r.data) in |= x == l.data;
      } else if (r.kind == Value::kData && r.data.is_object() && l.kind == Value::kData && l.data.is_string()) {
        in = r.data.contains(l.data.get<std::string>());
      } else if (r.kind == Value::kNamespace && l.kind == Value::kData && l.data.is_string()) {
        in = r.ns->count(l.data.get<std::string>()) > 0;
      } else {
        return Fail(e.line, absl::StrCat("'", op, "' needs a string, list or dict on its right"));
      }
      *out = Value::Data(json(op == "in" ? in : !in));
      return true;
    }
    if (op == "~") {
      std::string s;
      if (!Str(l, e.line, &s) || !Str(r, e.line, &s)) return false;
      *out = Value::Data(json(s));
      return true;
    }
    if (l.undefined() || r.undefined()) {
      return Fail(e.line, absl::StrCat("'", (l.undefined() ? l : r).name, "' is undefined (in '", op, "')"));
    }
    if (l.kind != Value::kData || r.kind != Value::kData) return Fail(e.line, absl::StrCat("'", op, "' on a namespace"));
    const json &a = l.data, &b = r.data;
    if (op == "+" && a.is_string() && b.is_string()) {
      *out = Value::Data(json(a.get<std::string>() + b.get<std::string>()));
      return true;
    }
    if (op == "+" && a.is_array() && b.is_array()) {
      json c = a;
      for (const auto& x : b) c.push_back(x);
      *out = Value::Data(c);
      return true;
    }
    if (op == "*" && a.is_string() && b.is_number_integer()) {
      std::string s;
      for (int64_t i = 0; i < b.get<int64_t>(); ++i) s += a.get<std::string>();
      *out = Value::Data(json(s));
      return true;
    }
    const bool nums = (a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean());
    if (!nums && !(a.is_string() && b.is_string())) {
      return Fail(e.line, absl::StrCat("unsupported operand types for '", op, "'"));
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      bool res;
      if (a.is_string()) {
        const std::string &x = a.get_ref<const std::string&>(), &y = b.get_ref<const std::string&>();
        res = op == "<" ? x < y : op == ">" ? x > y : op == "<=" ? x <= y : x >= y;
      } else {
        const double x = a.is_boolean() ? a.get<bool>() : a.get<double>(), y = b.is_boolean() ? b.get<bool>() : b.get<double>();
        res = op == "<" ? x < y : op == ">" ? x > y : op == "<=" ? x <= y : x >= y;
      }
      *out = Value::Data(json(res));
      return true;
    }
    if (a.is_string()) return Fail(e.line, absl::StrCat("unsupported operand types for '", op, "'"));
    const bool ints = !a.is_number_float() && !b.is_number_float();
    auto I = [](const json& j) { return j.is_boolean() ? int64_t{j.get<bool>()} : j.get<int64_t>(); };
    auto D = [](const json& j) { return j.is_boolean() ? double{j.get<bool>() ? 1.0 : 0.0} : j.get<double>(); };
    if (op == "/") {
      if (D(b) == 0) return Fail(e.line, "division by zero");
      *out = Value::Data(json(D(a) / D(b)));
      return true;
    }
    if (ints) {
      const int64_t x = I(a), y = I(b);
      if ((op == "//" || op == "%") && y == 0) return Fail(e.line, "division by zero");
      int64_t v = op == "+" ? x + y : op == "-" ? x - y : op == "*" ? x * y : 0;
      if (op == "//") v = static_cast<int64_t>(std::floor(static_cast<double>(x) / y));
      if (op == "%") v = ((x % y) + y) % y;
      *out = Value::Data(json(v));
      return true;
    }
    const double x = D(a), y = D(b);
    double v = op == "+" ? x + y : op == "-" ? x - y : op == "*" ? x * y : 0;
    if (op == "//") v = std::floor(x / y);
    if (op == "%") v = x - std::floor(x / y) * y;
    *out = Value::Data(json(v));
    return true;
  }

  bool Test(const Expr& e, Value* out) {
    Value v;
    if (!Eval(*e.args[0], &v)) return false;
    const json* j = v.kind == Value::kData ? &v.data : nullptr;
    bool r;
    const std::string& t = e.name;
    if (t == "defined") r = !v.undefined();
    else if (t == "undefined") r = v.undefined();
    else if (t == "none") r = j && j->is_null();
    else if (t == "string") r = j && j->is_string();
    else if (t == "number") r = j && j->is_number();
    else if (t == "integer") r = j && j->is_number_integer();
    else if (t == "float") r = j && j->is_number_float();
    else if (t == "boolean") r = j && j->is_boolean();
    else if (t == "true") r = j && j->is_boolean() && j->get<bool>();
    else if (t == "false") r = j && j->is_boolean() && !j->get<bool>();
    else if (t == "mapping") r = (j && j->is_object()) || v.kind == Value::kNamespace;
    else if (t == "sequence" || t == "iterable") r = j && (j->is_array() || j->is_string() || j->is_object());
    else return Fail(e.line, absl::StrCat("test '", t, "' is not supported"));
    *out = Value::Data(json(e.negate ? !r : r));
    return true;
  }

  bool Filter(const Expr& e, Value* out) {
    Value v;
    if (!Eval(*e.args[0], &v)) return false;
    std::vector<Value> args;
    for (size_t i = 1; i < e.args.size(); ++i) {
      Value a;
      if (!Eval(*e.args[i], &a)) return false;
      args.push_back(a);
    }
    const std::string& f = e.name;
    if (f == "default" || f == "d") {
      const bool use_default = v.undefined() || (args.size() > 1 && Truthy(args[1]) && !Truthy(v));
      *out = use_default ? (args.empty() ? Value::Data(json("")) : args[0]) : v;
      return true;
    }
    if (v.undefined()) return Fail(e.line, absl::StrCat("'", v.name, "' is undefined (filter ", f, ")"));
    if (v.kind != Value::kData) return Fail(e.line, absl::StrCat("filter ", f, " on a namespace"));
    const json& j = v.data;
    if (f == "length" || f == "count") {
      if (j.is_string()) *out = Value::Data(json(static_cast<int64_t>(CodePoints(j.get<std::string>()).size())));
      else if (j.is_array() || j.is_object()) *out = Value::Data(json(static_cast<int64_t>(j.size())));
      else return Fail(e.line, "length of a value without one");
      return true;
    }
    if (f == "tojson") {
      std::string s;
      PyJsonDump(j, &s);
      *out = Value::Data(json(s));
      return true;
    }
    if (f == "trim") {
      if (!j.is_string()) return Fail(e.line, "trim on a non-string");
      std::string chars;
      const bool custom = !args.empty() && args[0].kind == Value::kData && args[0].data.is_string();
      if (custom) chars = args[0].data.get<std::string>();
      *out = Value::Data(json(PyStrip(j.get<std::string>(), custom ? &chars : nullptr, true, true)));
      return true;
    }
    if (f == "string") {
      std::string s;
      if (!Str(v, e.line, &s)) return false;
      *out = Value::Data(json(s));
      return true;
    }
    if (f == "lower" || f == "upper") {
      if (!j.is_string()) return Fail(e.line, absl::StrCat(f, " on a non-string"));
      std::string s = j.get<std::string>();
      for (auto& c : s) c = f == "lower" ? std::tolower(static_cast<unsigned char>(c)) : std::toupper(static_cast<unsigned char>(c));
      *out = Value::Data(json(s));
      return true;
    }
    if (f == "first" || f == "last") {
      if (!j.is_array() || j.empty()) {
        *out = Value::Undefined(f);
        return true;
      }
      *out = Value::Data(f == "first" ? j.front() : j.back());
      return true;
    }
    if (f == "reverse" || f == "list") {
      json l = json::array();
      if (j.is_array()) l = j;
      else if (j.is_string()) { auto cps = CodePoints(j.get<std::string>()); for (size_t i = 0; i < cps.size(); ++i) l.push_back(Utf8(cps, i, i + 1)); }
      else return Fail(e.line, absl::StrCat(f, " of a value that is not a list"));
      if (f == "reverse") std::reverse(l.begin(), l.end());
      *out = Value::Data(l);
      return true;
    }
    if (f == "join") {
      if (!j.is_array()) return Fail(e.line, "join of a non-list");
      const std::string sep = !args.empty() && args[0].kind == Value::kData && args[0].data.is_string() ? args[0].data.get<std::string>() : "";
      std::string s;
      for (size_t i = 0; i < j.size(); ++i) {
        if (i) s += sep;
        if (!Str(Value::Data(j[i]), e.line, &s)) return false;
      }
      *out = Value::Data(json(s));
      return true;
    }
    if (f == "items") {
      if (!j.is_object()) return Fail(e.line, "items of a non-dict");
      json l = json::array();
      for (auto it = j.begin(); it != j.end(); ++it) l.push_back(json::array({it.key(), it.value()}));
      *out = Value::Data(l);
      return true;
    }
    return Fail(e.line, absl::StrCat("filter '", f, "' is not supported"));
  }

  bool Call(const Expr& e, Value* out) {
    const Expr& callee = *e.args[0];
    std::vector<Value> args;
    for (size_t i = 1; i < e.args.size(); ++i) {
      Value a;
      if (!Eval(*e.args[i], &a)) return false;
      args.push_back(a);
    }
    const size_t positional = args.size() - e.kwarg_names.size();
    if (callee.op == Expr::kName) {
      if (callee.name == "namespace") {
        Value ns;
        ns.kind = Value::kNamespace;
        ns.ns = std::make_shared<std::map<std::string, Value>>();
        for (size_t k = 0; k < e.kwarg_names.size(); ++k) (*ns.ns)[e.kwarg_names[k]] = args[positional + k];
        *out = ns;
        return true;
      }
      if (callee.name == "raise_exception") {
        std::string msg;
        if (!args.empty()) Str(args[0], e.line, &msg);
        return Fail(e.line, absl::StrCat("raise_exception: ", msg));
      }
      if (callee.name == "range") {
        int64_t a = 0, b = 0, s = 1;
        auto I = [&](size_t k) { return args[k].kind == Value::kData && args[k].data.is_number_integer() ? args[k].data.get<int64_t>() : 0; };
        if (positional == 1) b = I(0);
        else if (positional >= 2) a = I(0), b = I(1), s = positional == 3 ? I(2) : 1;
        if (s == 0) return Fail(e.line, "range step cannot be zero");
        json l = json::array();
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) l.push_back(i);
        *out = Value::Data(l);
        return true;
      }
      return Fail(e.line, absl::StrCat("function '", callee.name, "' is not supported"));
    }
    if (callee.op != Expr::kAttr) return Fail(e.line, "only methods and namespace()/raise_exception()/range() can be called");
    Value obj;
    if (!Eval(*callee.args[0], &obj)) return false;
    const std::string& m = callee.name;
    if (obj.undefined()) return Fail(e.line, absl::StrCat("'", obj.name, "' is undefined (calling .", m, "())"));
    if (obj.kind != Value::kData) return Fail(e.line, absl::StrCat("method ", m, " on a namespace"));
    const json& j = obj.data;
    auto str_arg = [&](size_t k, std::string* s) {
      if (k >= positional || args[k].kind != Value::kData || !args[k].data.is_string()) return false;
      *s = args[k].data.get<std::string>();
      return true;
    };
    if (j.is_string()) {
      const std::string& s = j.get_ref<const std::string&>();
      std::string a;
      if (m == "startswith" || m == "endswith") {
        if (!str_arg(0, &a)) return Fail(e.line, absl::StrCat(m, " needs a string"));
        const bool r = m == "startswith" ? s.compare(0, a.size(), a) == 0 && s.size() >= a.size()
                                         : s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0;
        *out = Value::Data(json(r));
        return true;
      }
      if (m == "strip" || m == "lstrip" || m == "rstrip") {
        const bool has = positional > 0 && !(args[0].kind == Value::kData && args[0].data.is_null());
        if (has && !str_arg(0, &a)) return Fail(e.line, absl::StrCat(m, " needs a string"));
        *out = Value::Data(json(PyStrip(s, has ? &a : nullptr, m != "rstrip", m != "lstrip")));
        return true;
      }
      if (m == "split") {
        const bool has = positional > 0 && !(args[0].kind == Value::kData && args[0].data.is_null());
        if (has && !str_arg(0, &a)) return Fail(e.line, "split needs a string");
        if (has && a.empty()) return Fail(e.line, "split: empty separator");
        *out = Value::Data(PySplit(s, has ? &a : nullptr));
        return true;
      }
      if (m == "upper" || m == "lower") {
        std::string r = s;
        for (auto& c : r) c = m == "lower" ? std::tolower(static_cast<unsigned char>(c)) : std::toupper(static_cast<unsigned char>(c));
        *out = Value::Data(json(r));
        return true;
      }
      if (m == "replace") {
        std::string b;
        if (!str_arg(0, &a) || !str_arg(1, &b) || a.empty()) return Fail(e.line, "replace needs two strings");
        std::string r;
        size_t p = 0;
        while (true) {
          const size_t at = s.find(a, p);
          if (at == std::string::npos) break;
          r += s.substr(p, at - p) + b;
          p = at + a.size();
        }
        r += s.substr(p);
        *out = Value::Data(json(r));
        return true;
      }
    }
    if (j.is_object()) {
      if (m == "get") {
        std::string k;
        if (!str_arg(0, &k)) return Fail(e.line, "get needs a string key");
        auto it = j.find(k);
        *out = it != j.end() ? Value::Data(*it) : (positional > 1 ? args[1] : Value::Data(json()));
        return true;
      }
      if (m == "items" || m == "keys" || m == "values") {
        json l = json::array();
        for (auto it = j.begin(); it != j.end(); ++it) {
          if (m == "items") l.push_back(json::array({it.key(), it.value()}));
          else if (m == "keys") l.push_back(it.key());
          else l.push_back(it.value());
        }
        *out = Value::Data(l);
        return true;
      }
    }
    return Fail(e.line, absl::StrCat("method '", m, "' is not supported on this value"));
  }

  std::vector<std::map<std::string, Value>> scopes_;
  Error error_{0, ""};
  bool failed_ = false;
};

}  // namespace

ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(absl::string_view source) {
  auto chunks = Chunks(std::string(source));
  if (!chunks.ok()) return chunks.status();
  Parser parser(std::move(*chunks));
  std::unique_ptr<ChatTemplate> t(new ChatTemplate());
  auto stop = parser.ParseBody(&t->body_, {});
  if (!stop.ok()) return stop.status();
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& variables) const {
  Renderer r(variables);
  std::string out;
  if (!r.Run(body_, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("chat_template line ", r.error().line, ": ", r.error().message));
  }
  return out;
}

}  // namespace grail::tokenizer
