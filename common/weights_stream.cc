#include "common/weights_stream.h"

#include <openssl/evp.h>

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/memory.h"

namespace grail {

namespace {

std::string Hex(const unsigned char* digest, unsigned int len) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(ctx_); }

void Sha256Stream::Update(absl::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }

std::string Sha256Stream::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, digest, &len);
  return Hex(digest, len);
}

namespace {

// Calls `fn` on each chunk of `blob` in order; stops early when it returns false. The blob
// is hashed as it is chunked, so the first chunk leaves before the last byte is hashed; the
// digest rides on the last chunk.
bool ForEachChunk(absl::string_view blob, int64_t version, int64_t chunk_bytes,
                  const std::function<bool(const grail::v1::WeightsChunk&)>& fn) {
  const int64_t total = static_cast<int64_t>(blob.size());
  Sha256Stream sha;
  int64_t offset = 0;
  do {
    const int64_t n = std::min(chunk_bytes, total - offset);
    const absl::string_view data = blob.substr(static_cast<size_t>(offset), static_cast<size_t>(n));
    sha.Update(data);
    grail::v1::WeightsChunk c;
    c.set_version(version);
    c.set_offset(offset);
    c.set_total_bytes(total);
    if (offset + n == total) c.set_digest(sha.FinishHex());
    c.set_data(data.data(), data.size());
    if (!fn(c)) return false;
    offset += n;
  } while (offset < total);
  return true;
}

}  // namespace

std::vector<grail::v1::WeightsChunk> ChunkWeights(absl::string_view blob, int64_t version,
                                                  int64_t chunk_bytes) {
  std::vector<grail::v1::WeightsChunk> chunks;
  ForEachChunk(blob, version, chunk_bytes, [&](const grail::v1::WeightsChunk& c) {
    chunks.push_back(c);
    return true;
  });
  return chunks;
}

absl::Status WeightsAssembler::Add(const grail::v1::WeightsChunk& chunk) {
  const std::string where = absl::StrCat("weights chunk ", chunks_);
  if (chunks_ == 0) {
    if (chunk.version() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": version ", chunk.version(), " < 0"));
    }
    if (chunk.total_bytes() < 0 || chunk.total_bytes() > max_total_bytes_) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": total_bytes ", chunk.total_bytes(),
                                                     " outside [0, ", max_total_bytes_, "]"));
    }
    version_ = chunk.version();
    total_ = chunk.total_bytes();
    ReserveWithHugePages(&blob_, static_cast<size_t>(total_));
  } else if (chunk.version() != version_ || chunk.total_bytes() != total_) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": version or total_bytes changed within the stream"));
  }
  // The digest rides on the last chunk; a chunk before it may carry it too, the same one.
  if (!chunk.digest().empty()) {
    if (chunk.digest().size() != 64) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": digest is not a SHA-256 hex string"));
    }
    if (!digest_.empty() && chunk.digest() != digest_) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": digest changed within the stream"));
    }
    digest_ = chunk.digest();
  }
  if (chunk.offset() != bytes_received()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": offset ", chunk.offset(),
                                                   ", expected ", bytes_received()));
  }
  if (static_cast<int64_t>(chunk.data().size()) > total_ - bytes_received()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": data runs past total_bytes ", total_));
  }
  blob_.append(chunk.data());
  // Hashed as it arrives, while the next chunk is on the wire.
  if (check_ == DigestCheck::kVerify) sha_.Update(chunk.data());
  ++chunks_;
  return absl::OkStatus();
}

absl::StatusOr<std::string> WeightsAssembler::Finish() {
  if (chunks_ == 0) return absl::InvalidArgumentError("weights: empty stream");
  if (bytes_received() != total_) {
    return absl::DataLossError(absl::StrCat("weights: stream ended after ", bytes_received(),
                                            " of ", total_, " bytes"));
  }
  if (digest_.empty()) return absl::InvalidArgumentError("weights: the stream carried no digest");
  if (check_ == DigestCheck::kLeaveToReceivers) return std::move(blob_);
  const std::string actual = sha_.FinishHex();
  if (actual != digest_) {
    return absl::DataLossError(absl::StrCat("weights: digest mismatch (got ", actual.substr(0, 12),
                                            "..., stream says ", digest_.substr(0, 12), "...)"));
  }
  return std::move(blob_);
}

absl::StatusOr<ReceivedWeights> ReadWeightsStream(
    grpc::internal::ReaderInterface<grail::v1::WeightsChunk>* reader,
    const std::function<void(grail::v1::WeightsChunk)>& sink, DigestCheck check) {
  WeightsAssembler assembler(kMaxWeightsBytes, check);
  grail::v1::WeightsChunk chunk;
  absl::Status bad;
  // After a bad chunk the rest is read and dropped, so that the peer's stream ends normally
  // and both sides see this error rather than a cancellation.
  while (reader->Read(&chunk)) {
    if (!bad.ok()) continue;
    bad = assembler.Add(chunk);
    if (bad.ok() && sink) sink(std::move(chunk));
  }
  if (!bad.ok()) return bad;
  ReceivedWeights out;
  out.version = assembler.version();
  out.digest = assembler.digest();
  absl::StatusOr<std::string> blob = assembler.Finish();
  if (!blob.ok()) return blob.status();
  out.blob = std::move(*blob);
  return out;
}

absl::Status ServeWeightsUpload(grpc::internal::ReaderInterface<grail::v1::WeightsChunk>* reader,
                                const std::function<absl::Status(std::string, int64_t)>& load,
                                grail::v1::LoadWeightsResponse* response) {
  absl::StatusOr<ReceivedWeights> weights = ReadWeightsStream(reader);
  if (!weights.ok()) return weights.status();
  const int64_t bytes = static_cast<int64_t>(weights->blob.size());
  absl::Status status = load(std::move(weights->blob), weights->version);
  if (!status.ok()) return status;
  response->set_version(weights->version);
  response->set_bytes_received(bytes);
  return absl::OkStatus();
}

absl::Status UploadWeights(grpc::ClientWriterInterface<grail::v1::WeightsChunk>* writer,
                           absl::string_view blob, int64_t version) {
  absl::Status sent = WriteWeightsStream(writer, blob, version);
  writer->WritesDone();
  absl::Status status = FromGrpcStatus(writer->Finish());
  if (!status.ok()) return status;
  return sent;
}

absl::Status WriteWeightsStream(grpc::internal::WriterInterface<grail::v1::WeightsChunk>* writer,
                                absl::string_view blob, int64_t version, int64_t chunk_bytes) {
  int64_t offset = 0;
  const bool ok = ForEachChunk(blob, version, chunk_bytes, [&](const grail::v1::WeightsChunk& c) {
    offset = c.offset();
    return writer->Write(c);
  });
  if (!ok) return absl::UnavailableError(absl::StrCat("weights stream broken at offset ", offset));
  return absl::OkStatus();
}

}  // namespace grail
