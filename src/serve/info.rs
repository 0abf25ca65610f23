//! What a server says of its model: the context it serves, the vocabulary, the hidden size, the
//! parameter count and bytes, its slots. Each engine says it somewhere else — llama.cpp in
//! `/v1/models` (`meta`) and `/props`, vLLM in `/v1/models` (`max_model_len`), TGI in `/info` —
//! and each field is `None` where the engine does not say it. The remote panes show what is
//! known and say "not known for a remote server" for the rest.

use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// Tokens one request may hold (llama.cpp: per slot).
    pub context: Option<usize>,
    /// The context the model was trained for.
    pub context_train: Option<usize>,
    pub vocab: Option<usize>,
    pub hidden: Option<usize>,
    pub parameters: Option<u64>,
    /// Bytes of the model's weights (its file, for llama.cpp).
    pub bytes: Option<u64>,
    /// Requests served at once (llama.cpp's slots, TGI's concurrent requests).
    pub slots: Option<usize>,
    /// The weights' type, as the server names it (`Q4_K - Medium`).
    pub quant: Option<String>,
}

fn int(v: &Value, key: &str) -> Option<u64> {
    v.get(key)?.as_u64()
}

impl ServerInfo {
    /// Adds what a `/v1/models` answer says (its first model).
    pub fn models(&mut self, body: &Value) {
        let Some(m) = body.get("data").and_then(|d| d.get(0)) else {
            return;
        };
        // vLLM (and SGLang): the longest sequence served.
        if let Some(n) = int(m, "max_model_len") {
            self.context.get_or_insert(n as usize);
        }
        let Some(meta) = m.get("meta") else { return };
        // llama.cpp: the model file's numbers.
        if let Some(n) = int(meta, "n_ctx") {
            self.context.get_or_insert(n as usize);
        }
        self.context_train = int(meta, "n_ctx_train").map(|n| n as usize);
        self.vocab = int(meta, "n_vocab").map(|n| n as usize);
        self.hidden = int(meta, "n_embd").map(|n| n as usize);
        self.parameters = int(meta, "n_params");
        self.bytes = int(meta, "size");
        self.quant = meta
            .get("ftype")
            .and_then(Value::as_str)
            .map(str::to_string);
    }

    /// Adds what llama.cpp's `/props` says: its slots and each slot's context.
    pub fn props(&mut self, body: &Value) {
        if let Some(n) = int(body, "total_slots") {
            self.slots = Some(n as usize);
        }
        if let Some(n) = body
            .get("default_generation_settings")
            .and_then(|s| int(s, "n_ctx"))
        {
            self.context = Some(n as usize);
        }
    }

    /// Adds what TGI's `/info` says: the longest request and the most served at once.
    pub fn tgi(&mut self, body: &Value) {
        if let Some(n) = int(body, "max_total_tokens") {
            self.context.get_or_insert(n as usize);
        }
        if let Some(n) = int(body, "max_concurrent_requests") {
            self.slots.get_or_insert(n as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_engine_says_it_somewhere_else() {
        // llama.cpp b6000-era `/v1/models` and `/props`, as captured from llama-server.
        let mut l = ServerInfo::default();
        l.models(
            &json!({"object":"list","data":[{"id":"m.gguf","owned_by":"llamacpp","meta":{
            "vocab_type":2,"n_vocab":151936,"n_ctx":2048,"n_ctx_train":32768,"n_embd":896,
            "n_params":630167424,"size":485452288,"ftype":"Q4_K - Medium"}}]}),
        );
        l.props(&json!({"total_slots":4,"default_generation_settings":{"n_ctx":2048}}));
        assert_eq!(
            l,
            ServerInfo {
                context: Some(2048),
                context_train: Some(32768),
                vocab: Some(151936),
                hidden: Some(896),
                parameters: Some(630167424),
                bytes: Some(485452288),
                slots: Some(4),
                quant: Some("Q4_K - Medium".into()),
            }
        );
        let mut v = ServerInfo::default();
        v.models(&json!({"data":[{"id":"Qwen/Qwen2.5-0.5B","max_model_len":32768}]}));
        assert_eq!((v.context, v.hidden), (Some(32768), None));
        let mut t = ServerInfo::default();
        t.tgi(&json!({"model_id":"x","max_total_tokens":4096,"max_concurrent_requests":128}));
        assert_eq!((t.context, t.slots), (Some(4096), Some(128)));
        // An answer in no shape we know adds nothing.
        let mut n = ServerInfo::default();
        n.models(&json!({"models": []}));
        assert_eq!(n, ServerInfo::default());
    }
}
