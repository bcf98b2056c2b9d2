package io.ptune.inspect;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.internal.JsonFiles;
import io.ptune.report.NearestTokensPlot;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * What {@link AdapterInspector} found in an adapter: its method and files, and its virtual tokens
 * (input-level prompts) or per-layer key/value prefixes (prefix tuning).
 *
 * @param adapter the adapter folder
 * @param peftType adapter_config.json's peft_type
 * @param method the ptune method (composite: a PROMPT_TUNING adapter with composite blocks)
 * @param taskType adapter_config.json's task_type, or null
 * @param baseModel adapter_config.json's base_model_name_or_path, or null
 * @param numVirtualTokens n: virtual tokens, or prefix positions
 * @param tokenDim adapter_config.json's token_dim
 * @param trainableParameters what training trains (the prompt or its encoder / projection /
 *     generator, composite blocks that are not frozen, stage-2 layers, a task head), or -1 when the
 *     adapter does not hold it (PEFT saves only a P-tuning encoder's output)
 * @param tensors every tensor of every safetensors file in the folder
 * @param notes remarks for the reader (what is missing, what was chosen)
 * @param promptSource where {@link #virtualTokens} come from, in words; null for prefix tuning
 * @param virtualTokens one per input-level virtual token; empty for prefix tuning
 * @param vocabMeanNorm the mean L2 norm of the model's input embeddings; NaN without a model
 * @param prefixLayers one per layer for prefix tuning; empty otherwise
 */
public record AdapterInspection(Path adapter, String peftType, String method, String taskType, String baseModel,
        int numVirtualTokens, int tokenDim, long trainableParameters, List<Tensor> tensors, List<String> notes,
        String promptSource, List<VirtualToken> virtualTokens, double vocabMeanNorm, List<PrefixLayer> prefixLayers) {

    /** A tensor in one of the adapter's files. */
    public record Tensor(String file, String name, long[] shape, String dtype) {
        public Tensor {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }
    }

    /**
     * One virtual token of an input-level prompt.
     *
     * @param block its composite block, or null
     * @param norm its L2 norm
     * @param nearest the nearest vocabulary tokens, best first; empty without a model
     */
    public record VirtualToken(int index, String block, double norm, List<Neighbour> nearest) {
        public VirtualToken {
            nearest = List.copyOf(nearest);
        }
    }

    /** A vocabulary token near a virtual token: its id, its string in tokenizer.json, the cosine. */
    public record Neighbour(long id, String token, double cosine) {}

    /**
     * The prefix of one layer.
     *
     * @param keyNorms the L2 norm of the key prefix at each of the n positions (all heads together)
     * @param valueNorms the same for the value prefix
     */
    public record PrefixLayer(int layer, double[] keyNorms, double[] valueNorms) {
        public PrefixLayer {
            keyNorms = keyNorms.clone();
            valueNorms = valueNorms.clone();
        }

        @Override
        public double[] keyNorms() {
            return keyNorms.clone();
        }

        @Override
        public double[] valueNorms() {
            return valueNorms.clone();
        }

        public double meanKeyNorm() {
            return Arrays.stream(keyNorms).average().orElse(Double.NaN);
        }

        public double meanValueNorm() {
            return Arrays.stream(valueNorms).average().orElse(Double.NaN);
        }
    }

    public AdapterInspection {
        Objects.requireNonNull(adapter, "adapter");
        tensors = List.copyOf(tensors);
        notes = List.copyOf(notes);
        virtualTokens = List.copyOf(virtualTokens);
        prefixLayers = List.copyOf(prefixLayers);
    }

    /** Whether a model's embeddings were compared (nearest tokens, the vocabulary's mean norm). */
    public boolean hasNearestTokens() {
        return !Double.isNaN(vocabMeanNorm);
    }

    /** The machine-readable form that {@code ptune inspect --json} prints. */
    public ObjectNode toJson() {
        ObjectNode root = JsonFiles.MAPPER.createObjectNode();
        root.put("adapter", adapter.toString());
        root.put("peft_type", peftType);
        root.put("method", method);
        root.put("task_type", taskType);
        root.put("base_model", baseModel);
        root.put("num_virtual_tokens", numVirtualTokens);
        root.put("token_dim", tokenDim);
        if (trainableParameters >= 0) {
            root.put("trainable_parameters", trainableParameters);
        } else {
            root.putNull("trainable_parameters");
        }
        ArrayNode files = root.putArray("tensors");
        for (Tensor t : tensors) {
            ObjectNode node = files.addObject();
            node.put("file", t.file());
            node.put("name", t.name());
            ArrayNode shape = node.putArray("shape");
            for (long d : t.shape) {
                shape.add(d);
            }
            node.put("dtype", t.dtype());
        }
        ArrayNode noteArray = root.putArray("notes");
        notes.forEach(noteArray::add);
        if (hasNearestTokens()) {
            root.put("vocab_mean_norm", vocabMeanNorm);
        } else {
            root.putNull("vocab_mean_norm");
        }
        if (promptSource != null) {
            root.put("prompt_source", promptSource);
            ArrayNode tokens = root.putArray("virtual_tokens");
            for (VirtualToken v : virtualTokens) {
                ObjectNode node = tokens.addObject();
                node.put("index", v.index());
                if (v.block() != null) {
                    node.put("block", v.block());
                }
                node.put("norm", v.norm());
                if (hasNearestTokens()) {
                    node.put("norm_ratio", v.norm() / vocabMeanNorm);
                    ArrayNode nearest = node.putArray("nearest");
                    for (Neighbour n : v.nearest()) {
                        nearest.addObject().put("id", n.id()).put("token", n.token()).put("cosine", n.cosine());
                    }
                }
            }
        }
        if (!prefixLayers.isEmpty()) {
            ArrayNode layers = root.putArray("prefix_layers");
            for (PrefixLayer layer : prefixLayers) {
                ObjectNode node = layers.addObject();
                node.put("layer", layer.layer());
                node.put("mean_key_norm", layer.meanKeyNorm());
                node.put("mean_value_norm", layer.meanValueNorm());
                ArrayNode keys = node.putArray("key_norms");
                Arrays.stream(layer.keyNorms).forEach(keys::add);
                ArrayNode values = node.putArray("value_norms");
                Arrays.stream(layer.valueNorms).forEach(values::add);
            }
        }
        return root;
    }

    /** The human-readable report that {@code ptune inspect} prints. */
    public String toText() {
        StringBuilder out = new StringBuilder();
        line(out, "adapter:              %s", adapter);
        line(out, "method:               %s (peft_type %s%s)", method, peftType,
                taskType == null ? "" : ", task_type " + taskType);
        line(out, "base model:           %s", baseModel == null ? "(not recorded)" : baseModel);
        line(out, "virtual tokens:       %d%s, token_dim %d", numVirtualTokens,
                method.equals("prefix-tuning") ? " prefix positions per layer" : "", tokenDim);
        line(out, "trainable parameters: %s", trainableParameters < 0 ? "unknown (see notes)"
                : String.format(Locale.ROOT, "%,d", trainableParameters));
        out.append("tensors:\n");
        for (Tensor t : tensors) {
            line(out, "  %-36s %-28s %-16s %s", t.file(), t.name(), Arrays.toString(t.shape), t.dtype());
        }
        for (String note : notes) {
            line(out, "note: %s", note);
        }
        if (promptSource != null) {
            out.append('\n');
            line(out, "virtual tokens: %s", promptSource);
            if (hasNearestTokens()) {
                line(out, "vocabulary mean L2 norm: %.4f", vocabMeanNorm);
                line(out, "  %4s  %-12s %9s %7s   %s", "#", "block", "norm", "/vocab", "nearest tokens (cosine)");
            } else {
                line(out, "  %4s  %-12s %9s   %s", "#", "block", "norm", "(nearest tokens: give --model)");
            }
            for (VirtualToken v : virtualTokens) {
                String block = v.block() == null ? "-" : v.block();
                if (hasNearestTokens()) {
                    StringBuilder near = new StringBuilder();
                    for (Neighbour n : v.nearest()) {
                        near.append(near.length() == 0 ? "" : "  ")
                                .append(String.format(Locale.ROOT, "%s %.3f", quoted(n.token()), n.cosine()));
                    }
                    line(out, "  %4d  %-12s %9.4f %6.2fx   %s", v.index(), block, v.norm(), v.norm() / vocabMeanNorm,
                            near);
                } else {
                    line(out, "  %4d  %-12s %9.4f", v.index(), block, v.norm());
                }
            }
        }
        if (!prefixLayers.isEmpty()) {
            out.append('\n');
            line(out, "per-layer prefix norms (mean L2 norm over the %d positions; nearest tokens do not apply"
                    + " to keys and values):", numVirtualTokens);
            line(out, "  %5s %12s %12s", "layer", "key", "value");
            for (PrefixLayer layer : prefixLayers) {
                line(out, "  %5d %12.4f %12.4f", layer.layer(), layer.meanKeyNorm(), layer.meanValueNorm());
            }
        }
        return out.toString();
    }

    /** A token string in quotes, made visible (see {@link NearestTokensPlot#visible}). */
    static String quoted(String token) {
        return "'" + NearestTokensPlot.visible(token) + "'";
    }

    private static void line(StringBuilder out, String format, Object... args) {
        out.append(String.format(Locale.ROOT, format, args)).append('\n');
    }
}
