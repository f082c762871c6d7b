#include "tokenizer/chat_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::tokenizer {
namespace {

using json = nlohmann::ordered_json;

std::string Render(const std::string& src, const json& vars) {
  auto t = ChatTemplate::Parse(src);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "";
  auto out = (*t)->Render(vars);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

TEST(ChatTemplateTest, WhitespaceControlAsTransformersConfiguresJinja) {
  // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before
  // one, "-" strips all whitespace on its side, and one trailing newline is dropped.
  EXPECT_EQ(Render("{% if true %}\n  a\n  {% endif %}\nb\n", json::object()), "  a\nb");
  EXPECT_EQ(Render("x  {%- if true -%}  y  {%- endif %}", json::object()), "xy");
  EXPECT_EQ(Render("{{ 'a' }}\n{{ 'b' }}", json::object()), "a\nb");
}

TEST(ChatTemplateTest, LoopsNamespacesAndPythonStringMethods) {
  const json vars = {{"messages", json::array({{{"role", "user"}, {"content", " hi\u3000"}},
                                               {{"role", "assistant"}, {"content", "<think>r</think>\n\nok"}}})}};
  EXPECT_EQ(Render("{% for m in messages %}{{ loop.index0 }}{{ m.role[0] }}{% if loop.last %}!{% endif %}{% endfor %}", vars),
            "0u1a!");
  EXPECT_EQ(Render("[{{ messages[0].content | trim }}]", vars), "[hi]");  // str.strip() strips U+3000
  EXPECT_EQ(Render("{{ messages[1].content.split('</think>')[-1].lstrip('\\n') }}", vars), "ok");
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% for m in messages[::-1] %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
                   vars),
            "2");
  EXPECT_EQ(Render("{{ {'b': 1, 'a': [true, none, 'x']} | tojson }}", json::object()),
            "{\"b\": 1, \"a\": [true, null, \"x\"]}");
  EXPECT_EQ(Render("{{ x is defined }}{{ messages | length - 1 }}{{ 'a' if x is not defined else 'b' }}", vars), "False1a");
}

TEST(ChatTemplateTest, ErrorsNameTheTemplateLine) {
  auto unsupported = ChatTemplate::Parse("a\n{% macro m() %}{% endmacro %}");
  ASSERT_FALSE(unsupported.ok());
  EXPECT_THAT(std::string(unsupported.status().message()), ::testing::HasSubstr("line 2"));
  auto unclosed = ChatTemplate::Parse("{% if x %}never closed");
  EXPECT_FALSE(unclosed.ok());
  auto t = ChatTemplate::Parse("line one\n{{ raise_exception('Conversation roles must alternate') }}");
  ASSERT_TRUE(t.ok()) << t.status();
  auto out = (*t)->Render(json::object());
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr("line 2: raise_exception: Conversation roles"));
  auto undefined = ChatTemplate::Parse("{{ '<' + message.role }}");
  ASSERT_TRUE(undefined.ok());
  EXPECT_THAT(std::string((*undefined)->Render(json::object()).status().message()),
              ::testing::HasSubstr("'message' is undefined"));
}

}  // namespace
}  // namespace grail::tokenizer
