// spm.cc - the C API of spm.h over SentencePiece's C++ library; the only C++
// file of mmt. Every exported function catches every exception and turns it,
// like every non-ok sentencepiece::util::Status, into MMT_ERR and a message.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <exception>
#include <locale>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

// common.h is C: its functions need C linkage. The Makefile gives C++ only
// -Itokenizers, hence the relative path.
extern "C" {
#include "../src/common.h"
}
#include "spm.h"

struct spm_model {
    sentencepiece::SentencePieceProcessor sp;
};

namespace {

// Copy s into a malloc'd NUL-terminated buffer (the C side frees it).
char *dup_string(const std::string &s) {
    char *p = static_cast<char *>(mmt_malloc(s.size() + 1));
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

// SentencePiece's message for s, without the trailing blanks it often has.
std::string why(const sentencepiece::util::Status &s) {
    std::string t = s.ToString();
    while (!t.empty() && (t.back() == ' ' || t.back() == '\n')) t.pop_back();
    return t;
}

// A number as text in the "C" locale, whatever the process locale says.
template <typename T> std::string num(T v) {
    std::ostringstream os;
    os.imbue(std::locale::classic());
    os << v;
    return os.str();
}

// Why SentencePiece could not take path as one element of its input list,
// or NULL when it can.
const char *bad_input_path(const char *path) {
    if (!path || !*path) return "is empty";
    for (const char *c = path; *c; c++) {
        if (*c == ',') return "contains ',' (SentencePiece splits its input list on it)";
        if (*c == '"') return "contains '\"' (SentencePiece reads its input list as CSV)";
        if (*c == '=') return "contains '=' (SentencePiece reads key=value arguments)";
        if (static_cast<unsigned char>(*c) <= ' ' || *c == 0x7f)
            return "contains whitespace or a control character";
    }
    return nullptr;
}

}  // namespace

// ----------------------------------------------------------------- lifetime

extern "C" spm_model *spm_load(const char *path, mmt_status *st) {
    MMT_ASSERT(path);
    spm_model *m = nullptr;
    try {
        m = new spm_model;
        const auto s = m->sp.Load(path);
        if (s.ok()) return m;
        mmt_fail(st, "%s: cannot load SentencePiece model: %s", path, why(s).c_str());
    } catch (const std::exception &e) {
        mmt_fail(st, "%s: cannot load SentencePiece model: %s", path, e.what());
    } catch (...) {
        mmt_fail(st, "%s: cannot load SentencePiece model: unknown C++ exception", path);
    }
    delete m;
    return nullptr;
}

extern "C" spm_model *spm_load_from_bytes(const void *buf, size_t len, mmt_status *st) {
    MMT_ASSERT(buf || len == 0);
    spm_model *m = nullptr;
    const char *what = "SentencePiece model in memory";
    try {
        m = new spm_model;
        const std::string bytes(static_cast<const char *>(buf), len);
        const auto s = m->sp.LoadFromSerializedProto(bytes);
        if (s.ok()) return m;
        mmt_fail(st, "%s (%zu bytes): cannot load: %s", what, len, why(s).c_str());
    } catch (const std::exception &e) {
        mmt_fail(st, "%s (%zu bytes): cannot load: %s", what, len, e.what());
    } catch (...) {
        mmt_fail(st, "%s (%zu bytes): cannot load: unknown C++ exception", what, len);
    }
    delete m;
    return nullptr;
}

extern "C" int spm_serialize(const spm_model *m, char **buf, size_t *len, mmt_status *st) {
    MMT_ASSERT(m && buf && len);
    *buf = nullptr;
    *len = 0;
    try {
        const std::string bytes = m->sp.serialized_model_proto();
        if (bytes.empty()) return mmt_fail(st, "spm_serialize: the model holds no proto");
        *buf = static_cast<char *>(mmt_malloc(bytes.size()));
        std::memcpy(*buf, bytes.data(), bytes.size());
        *len = bytes.size();
        return MMT_OK;
    } catch (const std::exception &e) {
        return mmt_fail(st, "spm_serialize: %s", e.what());
    } catch (...) {
        return mmt_fail(st, "spm_serialize: unknown C++ exception");
    }
}

extern "C" void spm_free(spm_model *m) {
    delete m;
}

// ---------------------------------------------------------- encode / decode

extern "C" int spm_encode(const spm_model *m, const char *text, int **ids, int *n,
                          mmt_status *st) {
    MMT_ASSERT(m && text && ids && n);
    *ids = nullptr;
    *n = 0;
    const size_t bytes = std::strlen(text);
    try {
        std::vector<int> v;
        const auto s = m->sp.Encode(text, &v);
        if (!s.ok())
            return mmt_fail(st, "spm_encode: cannot encode a %zu-byte text: %s", bytes,
                            why(s).c_str());
        *ids = static_cast<int *>(mmt_malloc(v.size() * sizeof(int)));
        if (!v.empty()) std::memcpy(*ids, v.data(), v.size() * sizeof(int));
        *n = static_cast<int>(v.size());
        return MMT_OK;
    } catch (const std::exception &e) {
        return mmt_fail(st, "spm_encode: cannot encode a %zu-byte text: %s", bytes, e.what());
    } catch (...) {
        return mmt_fail(st, "spm_encode: cannot encode a %zu-byte text: unknown C++ exception",
                        bytes);
    }
}

extern "C" int spm_decode(const spm_model *m, const int *ids, int n, char **text,
                          mmt_status *st) {
    MMT_ASSERT(m && text && n >= 0 && (ids || n == 0));
    *text = nullptr;
    try {
        // SentencePiece does not range-check ids: an id past the vocabulary
        // would read outside its piece table.
        const int V = m->sp.GetPieceSize();
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= V)
                return mmt_fail(st, "spm_decode: id %d at position %d is outside the "
                                "vocabulary [0, %d)", ids[i], i, V);

        const std::vector<int> v(ids, ids + n);
        std::string out;
        const auto s = m->sp.Decode(v, &out);
        if (!s.ok())
            return mmt_fail(st, "spm_decode: cannot decode %d ids: %s", n,
                            why(s).c_str());
        *text = dup_string(out);
        return MMT_OK;
    } catch (const std::exception &e) {
        return mmt_fail(st, "spm_decode: cannot decode %d ids: %s", n, e.what());
    } catch (...) {
        return mmt_fail(st, "spm_decode: cannot decode %d ids: unknown C++ exception", n);
    }
}

// --------------------------------------------------------------- vocabulary

// These only read fields of a loaded model; the try blocks keep the promise
// that nothing throws across the C boundary, and -1 reports the surprise.

extern "C" int spm_vocab_size(const spm_model *m) {
    MMT_ASSERT(m);
    try {
        return m->sp.GetPieceSize();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_piece_to_id(const spm_model *m, const char *piece) {
    MMT_ASSERT(m && piece);
    try {
        return m->sp.PieceToId(piece);
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_pad_id(const spm_model *m) {
    MMT_ASSERT(m);
    try {
        return m->sp.pad_id();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_bos_id(const spm_model *m) {
    MMT_ASSERT(m);
    try {
        return m->sp.bos_id();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_eos_id(const spm_model *m) {
    MMT_ASSERT(m);
    try {
        return m->sp.eos_id();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_unk_id(const spm_model *m) {
    MMT_ASSERT(m);
    try {
        return m->sp.unk_id();
    } catch (...) {
        return -1;
    }
}

// ----------------------------------------------------------------- training

namespace {

// Check opt and build SentencePiece's key=value arguments into args.
// Returns MMT_OK, or MMT_ERR with st naming the bad option.
int train_args(const spm_train_options *opt, std::unordered_map<std::string, std::string> &args,
               mmt_status *st) {
    if (opt->n_inputs <= 0 || !opt->inputs)
        return mmt_fail(st, "spm_train: no input files (n_inputs = %d)", opt->n_inputs);
    if (!opt->model_prefix || !*opt->model_prefix)
        return mmt_fail(st, "spm_train: model_prefix is empty");
    if (opt->vocab_size <= 4)
        return mmt_fail(st, "%s: spm_train: vocab_size must exceed the 4 special pieces, "
                        "got %d", opt->model_prefix, opt->vocab_size);
    const char *type = opt->model_type ? opt->model_type : "(null)";
    if (std::strcmp(type, "bpe") != 0 && std::strcmp(type, "unigram") != 0)
        return mmt_fail(st, "%s: spm_train: model_type must be \"bpe\" or \"unigram\", "
                        "got \"%s\"", opt->model_prefix, type);

    // inputs, joined with ',' after checking no path holds one
    std::string inputs;
    for (int i = 0; i < opt->n_inputs; i++) {
        const char *why = bad_input_path(opt->inputs[i]);
        if (why)
            return mmt_fail(st, "spm_train: input path \"%s\" %s; rename or link the file",
                            opt->inputs[i] ? opt->inputs[i] : "(null)", why);
        if (i) inputs += ',';
        inputs += opt->inputs[i];
    }

    args["input"] = inputs;
    args["model_prefix"] = opt->model_prefix;
    args["vocab_size"] = num(opt->vocab_size);
    args["model_type"] = type;
    args["pad_id"] = "0";
    args["unk_id"] = "1";
    args["bos_id"] = "2";
    args["eos_id"] = "3";
    args["hard_vocab_limit"] = "false";
    args["minloglevel"] = opt->verbose ? "0" : "2";  // 0 info, 1 warning, 2 error
    if (opt->character_coverage > 0) args["character_coverage"] = num(opt->character_coverage);
    if (opt->input_sentence_size > 0)
        args["input_sentence_size"] = num(opt->input_sentence_size);
    if (opt->num_threads > 0) args["num_threads"] = num(opt->num_threads);
    return MMT_OK;
}

}  // namespace

extern "C" int spm_train(const spm_train_options *opt, mmt_status *st) {
    MMT_ASSERT(opt);
    try {
        std::unordered_map<std::string, std::string> args;
        if (train_args(opt, args, st) != MMT_OK) return MMT_ERR;
        if (opt->seed != 0)
            sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(opt->seed));

        const auto s = sentencepiece::SentencePieceTrainer::Train(args);
        if (!s.ok())
            return mmt_fail(st, "%s: SentencePiece training on %s failed: %s",
                            opt->model_prefix, args["input"].c_str(), why(s).c_str());
        return MMT_OK;
    } catch (const std::exception &e) {
        return mmt_fail(st, "%s: SentencePiece training failed: %s",
                        opt->model_prefix ? opt->model_prefix : "spm_train", e.what());
    } catch (...) {
        return mmt_fail(st, "%s: SentencePiece training failed: unknown C++ exception",
                        opt->model_prefix ? opt->model_prefix : "spm_train");
    }
}
