#include "model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::model {
namespace {

TEST(ModelConfigTest, HfJsonRoundTrip) {
  ModelConfig c;
  c.vocab_size = 98;
  c.hidden_size = 96;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  auto back = ParseHfConfigJson(ToHfConfigJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->hidden_size, 96);
  EXPECT_EQ(back->num_key_value_heads, 2);
  EXPECT_TRUE(back->attention_bias);
  EXPECT_TRUE(back->tie_word_embeddings);
}

TEST(ModelConfigTest, ReadsQwen2Config) {
  auto c = ParseHfConfigJson(R"({"model_type":"qwen2","vocab_size":151936,"hidden_size":896,
    "intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,
    "num_key_value_heads":2,"max_position_embeddings":32768,"rope_theta":1000000.0,
    "rms_norm_eps":1e-06,"tie_word_embeddings":true,"torch_dtype":"bfloat16"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_EQ(c->head_dim(), 64);
}

TEST(ModelConfigTest, RejectsImpossibleShapes) {
  ModelConfig c;
  c.num_attention_heads = 5;  // 64 % 5 != 0
  EXPECT_THAT(std::string(c.Validate().message()), ::testing::HasSubstr("hidden_size"));
  c = ModelConfig();
  c.num_key_value_heads = 3;
  EXPECT_THAT(std::string(c.Validate().message()), ::testing::HasSubstr("num_key_value_heads"));
  EXPECT_FALSE(ParseHfConfigJson(R"({"vocab_size": 10})").ok());
  EXPECT_FALSE(ParseHfConfigJson("not json").ok());
}

TEST(ModelConfigTest, ProtoZeroFieldsKeepDefaults) {
  grail::v1::ModelConfig p;
  p.set_hidden_size(32);
  p.set_num_attention_heads(2);
  ModelConfig c = ModelConfigFromProto(p);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_key_value_heads, 2);  // defaults to the number of heads
  EXPECT_EQ(c.vocab_size, ModelConfig().vocab_size);
  EXPECT_TRUE(c.Validate().ok());
}

}  // namespace
}  // namespace grail::model
