package io.ptune.inspect;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.AdapterException;
import io.ptune.InvalidConfigException;
import io.ptune.ModelFormatException;
import io.ptune.adapter.AdapterFiles;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.adapter.Safetensors.TensorInfo;
import io.ptune.inspect.AdapterInspection.Neighbour;
import io.ptune.inspect.AdapterInspection.PrefixLayer;
import io.ptune.inspect.AdapterInspection.Tensor;
import io.ptune.inspect.AdapterInspection.VirtualToken;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.CompositePromptConfig;
import io.ptune.prompt.PromptBlock;
import io.ptune.prompt.PromptModule;
import io.ptune.report.NearestTokensPlot;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Looks inside a prompt adapter (PEFT layout, written by ptune or by PEFT): its method, tensors,
 * trainable-parameter count and base model, read from the files alone; with a model, also where
 * its virtual tokens lie among the model's input embeddings.
 *
 * <p>What "the virtual tokens" are, per method:
 * <ul>
 *   <li>prompt tuning and composite prompts: {@code prompt_embeddings}, the (n, C) prompt (for a
 *       composite prompt the blocks stacked, each token labelled with its block);
 *   <li>P-tuning: the prompt encoder's output, which is what the model sees (PEFT's inference
 *       path). With a model and ptune's encoder file it is computed through the encoder; otherwise
 *       it is the saved {@code prompt_embeddings}, which PEFT defines as that output;
 *   <li>dynamic prompts: the static part E of {@code P_x = E + g(mean(E(x)))}. It is the one
 *       input-independent prompt (the generator's last layer starts at zero, so training starts at
 *       E and learns per-input offsets from it); the generator's offsets differ per input and are
 *       not shown;
 *   <li>prefix tuning: no input tokens at all — the prefix enters every layer's keys and values,
 *       which do not live in the embedding space, so instead of nearest tokens the L2 norm of each
 *       layer's key and value prefix at each position is reported.
 * </ul>
 */
public final class AdapterInspector {
    private static final String DYNAMIC_PEFT_TYPE = PromptAdapter.DYNAMIC_PEFT_TYPE;

    private AdapterInspector() {}

    /**
     * Inspects the adapter in {@code dir}.
     *
     * @param model the model to compare the virtual tokens with (its input embeddings and
     *     tokenizer), or null for what the files alone tell
     * @param topK nearest tokens per virtual token (> 0)
     * @throws AdapterException naming the file when the adapter is missing, malformed, of a method
     *     ptune does not know, or made for another model than {@code model}
     */
    public static AdapterInspection inspect(Path dir, Model model, int topK) {
        if (topK <= 0) {
            throw new IllegalArgumentException("--top-k must be > 0, got " + topK);
        }
        if (!Files.isDirectory(dir)) {
            throw new AdapterException("adapter directory " + dir + " does not exist; pass the folder that holds"
                    + " adapter_config.json and adapter_model.safetensors");
        }
        Path configFile = dir.resolve(PromptAdapter.CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new AdapterException(dir + " has no " + PromptAdapter.CONFIG_FILE + "; is it a PEFT adapter"
                    + " directory (what `ptune train --out` or PEFT's save_pretrained writes)?");
        }
        JsonNode config = JsonFiles.readObject(configFile, AdapterException::new, "");
        String peftType = AdapterFiles.textField(config, "peft_type", configFile);
        if (peftType == null) {
            throw new AdapterException(configFile + ": field 'peft_type' is required (PROMPT_TUNING, P_TUNING,"
                    + " PREFIX_TUNING or " + DYNAMIC_PEFT_TYPE + ")");
        }
        int n = AdapterFiles.requiredPositiveInt(config, "num_virtual_tokens", configFile);
        int tokenDim = AdapterFiles.requiredPositiveInt(config, "token_dim", configFile);
        Map<String, SafetensorsFile> files = safetensorsFiles(dir);
        List<Tensor> tensors = new ArrayList<>();
        files.forEach((name, file) -> file.tensors().values().forEach(t ->
                tensors.add(new Tensor(name, t.name(), t.shape(), t.dtype().name()))));
        List<String> notes = new ArrayList<>();
        Path compositeFile = dir.resolve(PromptAdapter.COMPOSITE_FILE);
        String method = switch (peftType) {
            case "PROMPT_TUNING" -> Files.exists(compositeFile) ? "composite" : "prompt-tuning";
            case "P_TUNING" -> "p-tuning";
            case "PREFIX_TUNING" -> "prefix-tuning";
            case DYNAMIC_PEFT_TYPE -> "dynamic";
            default -> throw new AdapterException(configFile + ": peft_type " + peftType + " is not a prompt-learning"
                    + " method ptune knows (PROMPT_TUNING, P_TUNING, PREFIX_TUNING, " + DYNAMIC_PEFT_TYPE + ")");
        };
        List<PromptBlock> blocks = method.equals("composite") ? blocks(compositeFile) : List.of();
        long trainable = trainableParameters(method, config, configFile, files, blocks, tokenDim, notes);

        float[] values;
        if (model != null) {
            // Loading checks that the adapter fits the model, and computes P-tuning's encoder output.
            try (PromptModule module = PromptAdapter.load(dir, model)) {
                values = switch (method) {
                    case "prefix-tuning" -> module.peftEmbeddings();
                    case "dynamic" -> module.read("embedding");
                    default -> module.inputPrompt().values();
                };
            }
        } else {
            values = method.equals("dynamic")
                    ? readTensor(files, dir, PromptAdapter.DYNAMIC_FILE, "embedding.weight")
                    : readTensor(files, dir, PromptAdapter.WEIGHTS_FILE, PromptAdapter.TENSOR_NAME);
        }

        String base = AdapterFiles.textField(config, "base_model_name_or_path", configFile);
        String taskType = AdapterFiles.textField(config, "task_type", configFile);
        if (method.equals("prefix-tuning")) {
            List<PrefixLayer> layers = prefixLayers(values, n, tokenDim, config, configFile);
            return new AdapterInspection(dir, peftType, method, taskType, base, n, tokenDim, trainable, tensors, notes,
                    null, List.of(), Double.NaN, layers);
        }
        if (values.length != (long) n * tokenDim) {
            throw new AdapterException(dir + ": the prompt holds " + values.length + " values but adapter_config.json"
                    + " says num_virtual_tokens " + n + " and token_dim " + tokenDim);
        }
        String source = switch (method) {
            case "p-tuning" -> model != null && Files.exists(dir.resolve(PromptAdapter.P_TUNING_ENCODER_FILE))
                    ? "the prompt encoder's output, computed through the encoder (" + PromptAdapter.P_TUNING_ENCODER_FILE
                            + ")"
                    : "the prompt encoder's output (prompt_embeddings, as PEFT saves it)";
            case "dynamic" -> "the static part E of P_x = E + g(mean(E(x))) (the generator's per-input offsets"
                    + " are not shown)";
            case "composite" -> "prompt_embeddings, the composite blocks stacked in order";
            default -> "prompt_embeddings";
        };
        NearestTokens.Result near = model == null ? null : NearestTokens.find(model, values, n, topK);
        List<VirtualToken> tokens = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            List<Neighbour> neighbours = new ArrayList<>();
            if (near != null) {
                for (NearestTokens.Match m : near.nearest().get(i)) {
                    neighbours.add(new Neighbour(m.id(), tokenString(model, m.id()), m.cosine()));
                }
            }
            tokens.add(new VirtualToken(i, blockOf(blocks, i), NearestTokens.norm(values, i * tokenDim, tokenDim),
                    neighbours));
        }
        return new AdapterInspection(dir, peftType, method, taskType, base, n, tokenDim, trainable, tensors, notes,
                source, tokens, near == null ? Double.NaN : near.vocabMeanNorm(), List.of());
    }

    /**
     * Writes the heat map of {@code inspection}'s nearest tokens ({@link NearestTokensPlot}).
     *
     * @throws IllegalArgumentException when it has none (a prefix adapter, or no model was given)
     */
    public static void writeNearestTokensPng(AdapterInspection inspection, Path png) {
        if (!inspection.hasNearestTokens() || inspection.virtualTokens().isEmpty()) {
            throw new IllegalArgumentException("--png draws the nearest vocabulary tokens of the virtual tokens,"
                    + (inspection.method().equals("prefix-tuning")
                            ? " which a prefix-tuning adapter does not have (its prefix lives in the keys and values)"
                            : " which need --model DIR"));
        }
        List<List<String>> tokens = new ArrayList<>();
        double[][] cosines = new double[inspection.virtualTokens().size()][];
        for (VirtualToken v : inspection.virtualTokens()) {
            tokens.add(v.nearest().stream().map(Neighbour::token).toList());
            cosines[v.index()] = v.nearest().stream().mapToDouble(Neighbour::cosine).toArray();
        }
        Path name = inspection.adapter().toAbsolutePath().normalize().getFileName();
        NearestTokensPlot.write(png, "Nearest vocabulary tokens of " + (name == null ? "the prompt" : name)
                + " (" + inspection.method() + ")", tokens, cosines);
    }

    /**
     * The trainable parameters as training counts them, from the files: the method's own tensors
     * (P-tuning's encoder and prefix tuning's projection when their extra file is there, else the
     * saved prompt; a dynamic prompt's E and generator), minus frozen composite blocks, plus
     * stage-2 layers and task heads.
     */
    private static long trainableParameters(String method, JsonNode config, Path configFile,
            Map<String, SafetensorsFile> files, List<PromptBlock> blocks, int tokenDim, List<String> notes) {
        long total = 0;
        for (Map.Entry<String, SafetensorsFile> file : files.entrySet()) {
            for (TensorInfo t : file.getValue().tensors().values()) {
                total += t.numel();
            }
        }
        boolean encoderFile = files.containsKey(PromptAdapter.P_TUNING_ENCODER_FILE);
        boolean projectionFile = files.containsKey(PromptAdapter.PREFIX_ENCODER_FILE);
        long promptValues = numel(files, PromptAdapter.WEIGHTS_FILE, PromptAdapter.TENSOR_NAME);
        switch (method) {
            case "p-tuning" -> {
                if (encoderFile) {
                    total -= promptValues; // the encoder's output, not a parameter
                } else {
                    notes.add("the P-tuning encoder's weights are not in the adapter (PEFT saves only its output):"
                            + " how many parameters it trained is unknown");
                    return -1;
                }
            }
            case "prefix-tuning" -> {
                Boolean projection = config.path("prefix_projection").isBoolean()
                        ? config.get("prefix_projection").booleanValue() : null;
                if (Boolean.TRUE.equals(projection)) {
                    if (projectionFile) {
                        total -= promptValues; // the projection's output, not a parameter
                    } else {
                        notes.add("the prefix projection's weights are not in the adapter (PEFT saves only the"
                                + " projected prefix): how many parameters it trained is unknown");
                        return -1;
                    }
                }
            }
            case "composite" -> {
                for (PromptBlock block : blocks) {
                    if (block.frozen()) {
                        total -= (long) block.numVirtualTokens() * tokenDim;
                        notes.add("composite block '" + block.name() + "' (" + block.numVirtualTokens()
                                + " virtual tokens) is frozen: not counted as trainable");
                    }
                }
            }
            default -> { }
        }
        if (files.containsKey(PromptAdapter.LAYERS_FILE)) {
            notes.add("stage-2 training unfroze transformer layers (" + PromptAdapter.LAYERS_FILE
                    + "): their weights are counted");
        }
        return total;
    }

    private static List<PrefixLayer> prefixLayers(float[] values, int n, int tokenDim, JsonNode config,
            Path configFile) {
        long width = values.length / Math.max(1, n);
        Integer layersField = config.path("num_layers").canConvertToInt() ? config.get("num_layers").intValue() : null;
        int layers = layersField != null ? layersField : (int) (width / (2L * tokenDim));
        if (layers <= 0 || (long) n * 2 * layers * tokenDim != values.length) {
            throw new AdapterException(configFile + ": prompt_embeddings holds " + values.length + " values, not"
                    + " num_virtual_tokens " + n + " x 2 x num_layers " + layers + " x token_dim " + tokenDim
                    + " (PEFT's [n, 2 * num_layers * token_dim] prefix)");
        }
        // PEFT's layout: row i is (2L, token_dim); block 2l is layer l's key, 2l + 1 its value.
        List<PrefixLayer> out = new ArrayList<>();
        int rowWidth = 2 * layers * tokenDim;
        for (int l = 0; l < layers; l++) {
            double[] keys = new double[n];
            double[] vals = new double[n];
            for (int i = 0; i < n; i++) {
                keys[i] = NearestTokens.norm(values, i * rowWidth + 2 * l * tokenDim, tokenDim);
                vals[i] = NearestTokens.norm(values, i * rowWidth + (2 * l + 1) * tokenDim, tokenDim);
            }
            out.add(new PrefixLayer(l, keys, vals));
        }
        return out;
    }

    private static String tokenString(Model model, long id) {
        return model.hasTokenizer() ? model.tokenizer().tokenString(id).orElse("#" + id) : "#" + id;
    }

    private static String blockOf(List<PromptBlock> blocks, int index) {
        int start = 0;
        for (PromptBlock block : blocks) {
            if (index < start + block.numVirtualTokens()) {
                return block.name();
            }
            start += block.numVirtualTokens();
        }
        return null;
    }

    private static List<PromptBlock> blocks(Path file) {
        JsonNode json = JsonFiles.readObject(file, AdapterException::new, "");
        try {
            return CompositePromptConfig.blocksFromJson(json.get("blocks"), file);
        } catch (InvalidConfigException e) {
            throw new AdapterException(file + ": " + e.getMessage(), e);
        }
    }

    /** Every *.safetensors file of the folder, by file name, opened (header only). */
    private static Map<String, SafetensorsFile> safetensorsFiles(Path dir) {
        Map<String, SafetensorsFile> files = new TreeMap<>();
        try (Stream<Path> list = Files.list(dir)) {
            for (Path file : list.filter(f -> f.getFileName().toString().endsWith(".safetensors")).toList()) {
                try {
                    files.put(file.getFileName().toString(), Safetensors.open(file));
                } catch (ModelFormatException e) {
                    throw new AdapterException(e.getMessage(), e);
                }
            }
        } catch (IOException e) {
            throw new AdapterException("cannot list " + dir + ": " + e, e);
        }
        return files;
    }

    private static float[] readTensor(Map<String, SafetensorsFile> files, Path dir, String fileName, String tensor) {
        SafetensorsFile file = files.get(fileName);
        if (file == null) {
            throw new AdapterException(dir + " has no " + fileName + "; the adapter's prompt is kept there");
        }
        if (!file.tensors().containsKey(tensor)) {
            throw new AdapterException(file.path() + " has no tensor '" + tensor + "'; it holds "
                    + file.tensors().keySet());
        }
        try {
            return file.readFloat(tensor).data();
        } catch (ModelFormatException e) {
            throw new AdapterException(e.getMessage(), e);
        }
    }

    private static long numel(Map<String, SafetensorsFile> files, String fileName, String tensor) {
        SafetensorsFile file = files.get(fileName);
        TensorInfo info = file == null ? null : file.tensors().get(tensor);
        return info == null ? 0 : info.numel();
    }
}
