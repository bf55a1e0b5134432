import CLlama

#if canImport(Glibc)
    import Glibc
#endif

/// A token id in the model's vocabulary.
public typealias LlamaToken = Int32

/// One chat turn for the model's chat template.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage {
        ChatMessage(role: "assistant", content: content)
    }
}

/// Carries a Swift progress closure through llama.cpp's C callback.
private final class ProgressBox {
    let report: (Float) -> Void
    init(_ report: @escaping (Float) -> Void) { self.report = report }
}

/// A loaded GGUF model: owns the `llama_model` handle and answers vocabulary questions.
///
/// Weights are memory-mapped, so a model costs little until used and can be shared by several contexts.
/// The handle is freed in `deinit`; contexts keep their model alive.
/// Unchecked: a C handle; llama.cpp only reads the model after loading, so threads may share it.
public final class LlamaModel: @unchecked Sendable {
    let pointer: OpaquePointer
    let vocab: OpaquePointer
    /// The path the model was loaded from.
    public let path: String
    /// Layers asked to be offloaded to a GPU (0: the CPU runs everything).
    public let gpuLayers: Int32

    /// Loads a GGUF file. `gpuLayers` < 0 offloads every layer when llama.cpp was built with a GPU backend.
    /// `repackWeights` lets llama.cpp re-lay quantised weights for its CPU kernels (its default).
    /// `progress` is called with the fraction loaded (0…1) while the weights are read.
    public init(path: String, gpuLayers: Int32 = 0, useMmap: Bool = true, repackWeights: Bool = true,
                progress: ((Float) -> Void)? = nil) throws(LlamaError)
    {
        LlamaBackend.initialise()
        try Self.checkGGUF(path)
        var params = llama_model_default_params()
        params.n_gpu_layers = gpuLayers
        params.load_mode = useMmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE
        params.use_extra_bufts = repackWeights
        // Always install a callback: llama.cpp's default one prints progress dots to stderr.
        let box = ProgressBox(progress ?? { _ in })
        params.progress_callback = { fraction, data in
            Unmanaged<ProgressBox>.fromOpaque(data!).takeUnretainedValue().report(fraction)
            return true
        }
        params.progress_callback_user_data = Unmanaged.passUnretained(box).toOpaque()
        let loaded = withExtendedLifetime(box) { llama_model_load_from_file(path, params) }
        guard let model = loaded else { throw .loadFailed(path: path) }
        guard let vocab = llama_model_get_vocab(model) else {
            llama_model_free(model)
            throw .loadFailed(path: path)
        }
        self.pointer = model
        self.vocab = vocab
        self.path = path
        self.gpuLayers = gpuLayers
    }

    deinit {
        llama_model_free(pointer)
    }

    /// Checks that `path` exists, is a regular file and starts with the GGUF magic, so the common
    /// mistakes get a specific message instead of llama.cpp's generic failure.
    private static func checkGGUF(_ path: String) throws(LlamaError) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .fileNotFound(path: path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notGGUF(path: path, reason: "not a regular file") }
        guard let file = fopen(path, "rb") else {
            throw .notGGUF(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        var magic = [UInt8](repeating: 0, count: 4)
        let read = fread(&magic, 1, 4, file)
        guard read == 4, magic == Array("GGUF".utf8) else {
            throw .notGGUF(path: path, reason: read < 4 ? "file is shorter than a GGUF header" : "no GGUF magic")
        }
    }

    // MARK: Facts

    public var vocabularySize: Int { Int(llama_vocab_n_tokens(vocab)) }
    public var trainingContextLength: Int { Int(llama_model_n_ctx_train(pointer)) }
    public var layerCount: Int { Int(llama_model_n_layer(pointer)) }
    public var headCount: Int { Int(llama_model_n_head(pointer)) }
    public var kvHeadCount: Int { Int(llama_model_n_head_kv(pointer)) }
    public var embeddingSize: Int { Int(llama_model_n_embd(pointer)) }
    public var parameterCount: UInt64 { llama_model_n_params(pointer) }
    public var sizeBytes: UInt64 { llama_model_size(pointer) }
    /// KV-cache bytes per token cell: f16 keys and values of every layer's KV heads.
    public var kvBytesPerCell: Int { layerCount * 2 * kvHeadCount * (embeddingSize / max(1, headCount)) * 2 }

    /// llama.cpp's one-line description, e.g. "qwen2 0.5B Q4_K - Medium".
    public var description: String {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = llama_model_desc(pointer, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }

    /// A string from the GGUF metadata (e.g. "general.name").
    public func metadata(_ key: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 512)
        let count = llama_model_meta_val_str(pointer, key, &buffer, buffer.count)
        guard count >= 0 else { return nil }
        return String(decoding: buffer.prefix(min(Int(count), buffer.count - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Tokens

    /// Whether the token ends a generation (EOS, end of turn, …).
    public func isEndOfGeneration(_ token: LlamaToken) -> Bool { llama_vocab_is_eog(vocab, token) }

    /// Whether the token is a control token (chat template markers and the like).
    public func isControl(_ token: LlamaToken) -> Bool { llama_vocab_is_control(vocab, token) }

    /// Text to tokens. `addSpecial` adds BOS when the model wants one; `parseSpecial` turns
    /// template markers such as `<|im_start|>` into their control tokens instead of plain text.
    public func tokenize(_ text: String, addSpecial: Bool = false, parseSpecial: Bool = false) throws(LlamaError)
        -> [LlamaToken]
    {
        let utf8 = Array(text.utf8)
        guard utf8.count < Int32.max else { throw .tokenizationFailed(reason: "text too long") }
        var capacity = utf8.count + 8
        while true {
            var tokens = [LlamaToken](repeating: 0, count: capacity)
            let count = utf8.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    llama_tokenize(vocab, chars.baseAddress, Int32(chars.count), &tokens, Int32(capacity),
                                   addSpecial, parseSpecial)
                }
            }
            if count >= 0 { return Array(tokens.prefix(Int(count))) }
            if count == Int32.min { throw .tokenizationFailed(reason: "token count overflows") }
            capacity = Int(-count)
        }
    }

    /// The raw bytes of one token. A piece may be part of a multi-byte character, so it is bytes, not a
    /// string; `UTF8StreamDecoder` turns a run of pieces into text. `special` renders control tokens.
    public func piece(_ token: LlamaToken, special: Bool = false) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 64)
        var count = llama_token_to_piece(vocab, token, &buffer, Int32(buffer.count), 0, special)
        if count < 0 {
            buffer = [CChar](repeating: 0, count: Int(-count))
            count = llama_token_to_piece(vocab, token, &buffer, Int32(buffer.count), 0, special)
        }
        return buffer.prefix(Int(max(count, 0))).map { UInt8(bitPattern: $0) }
    }

    /// Tokens to text, buffering bytes across token boundaries (so split characters come out whole).
    public func detokenize(_ tokens: [LlamaToken], special: Bool = false) -> String {
        var decoder = UTF8StreamDecoder()
        var text = ""
        for token in tokens { text += decoder.append(piece(token, special: special)) }
        return text + decoder.finish()
    }

    // MARK: Chat template

    /// The chat template stored in the GGUF, if any.
    public var chatTemplate: String? {
        guard let template = llama_model_chat_template(pointer, nil) else { return nil }
        return String(cString: template)
    }

    /// Formats a conversation with the model's own chat template (`llama_chat_apply_template`).
    /// With `addAssistantPrefix` the text ends where the assistant's reply begins.
    public func applyChatTemplate(_ messages: [ChatMessage], addAssistantPrefix: Bool = true) throws(LlamaError)
        -> String
    {
        guard let template = chatTemplate else { throw .chatTemplateUnavailable }
        // Keep the C strings alive for the call.
        let roles = messages.map { strdup($0.role) }
        let contents = messages.map { strdup($0.content) }
        defer {
            roles.forEach { free($0) }
            contents.forEach { free($0) }
        }
        let chat = zip(roles, contents).map { llama_chat_message(role: $0, content: $1) }
        var capacity = messages.reduce(256) { $0 + 2 * ($1.content.utf8.count + $1.role.utf8.count) }
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let count = llama_chat_apply_template(template, chat, chat.count, addAssistantPrefix, &buffer,
                                                  Int32(capacity))
            if count < 0 { throw .chatTemplateFailed(reason: "llama.cpp does not support this model's template") }
            if Int(count) <= capacity {
                return String(decoding: buffer.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            capacity = Int(count)
        }
    }
}
