package io.ptune.model;

import io.ptune.InvalidConfigException;
import java.util.Locale;
import java.util.Objects;

/**
 * Where a model computes and in which dtype (issue 12): {@code --device cpu|cuda[:N]} and
 * {@code --dtype fp32|bf16|fp16}. The frozen weights are converted to the dtype and moved to the
 * device once, at load; what is trained (prompts, encoders, classifier heads), the optimizer's
 * moments and the losses stay fp32 whatever the dtype. {@link #DEFAULT} is CPU, fp32.
 *
 * @param device where the weights live and the forward and backward passes run
 * @param dtype the compute dtype of the frozen model
 */
public record LoadOptions(Device device, DType dtype) {
    /** CPU and fp32: what {@link Model#load(java.nio.file.Path)} uses. */
    public static final LoadOptions DEFAULT = new LoadOptions(Device.CPU, DType.FP32);

    public LoadOptions {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(dtype, "dtype");
    }

    /** From the flags' spellings ({@code "cuda:1"}, {@code "bf16"}); null means the default. */
    public static LoadOptions parse(String device, String dtype) {
        return new LoadOptions(device == null ? Device.CPU : Device.parse(device),
                dtype == null ? DType.FP32 : DType.parse(dtype));
    }

    /** The kinds of device. */
    public enum DeviceType {
        CPU,
        CUDA
    }

    /**
     * A device: the CPU, or a CUDA GPU by ordinal.
     *
     * @param type CPU or CUDA
     * @param index the GPU ordinal for CUDA (>= 0); 0 for the CPU
     */
    public record Device(DeviceType type, int index) {
        public static final Device CPU = new Device(DeviceType.CPU, 0);

        public Device {
            Objects.requireNonNull(type, "type");
            if (index < 0 || (type == DeviceType.CPU && index != 0)) {
                throw new InvalidConfigException("--device", "'" + spelled(type, index)
                        + "' is not a device; use cpu, cuda or cuda:N (N >= 0, the GPU's ordinal)");
            }
        }

        /** The GPU {@code cuda:index}. */
        public static Device cuda(int index) {
            return new Device(DeviceType.CUDA, index);
        }

        /**
         * Parses {@code cpu}, {@code cuda} (= {@code cuda:0}) or {@code cuda:N}, case-insensitively.
         *
         * @throws InvalidConfigException naming {@code --device} for anything else
         */
        public static Device parse(String text) {
            Objects.requireNonNull(text, "text");
            String s = text.trim().toLowerCase(Locale.ROOT);
            if (s.equals("cpu")) {
                return CPU;
            }
            if (s.equals("cuda")) {
                return cuda(0);
            }
            if (s.startsWith("cuda:") && s.length() > 5 && s.length() <= 9
                    && s.substring(5).chars().allMatch(c -> c >= '0' && c <= '9')) {
                return cuda(Integer.parseInt(s.substring(5)));
            }
            throw new InvalidConfigException("--device", "'" + text
                    + "' is not a device; use cpu, cuda or cuda:N (N >= 0, the GPU's ordinal)");
        }

        /** As the flag spells it: {@code cpu}, {@code cuda:1}. */
        @Override
        public String toString() {
            return spelled(type, index);
        }

        private static String spelled(DeviceType type, int index) {
            return type == DeviceType.CPU ? (index == 0 ? "cpu" : "cpu:" + index) : "cuda:" + index;
        }
    }

    /** Compute dtypes of the frozen model; the ordinal is the native façade's DType. */
    public enum DType {
        /** fp32 everywhere: the reference. */
        FP32("fp32"),
        /** bfloat16 weights and activations (fp32's range, an 8-bit mantissa); CPU or CUDA. */
        BF16("bf16"),
        /** float16 weights and activations, with a dynamic loss scaler when training; CUDA only. */
        FP16("fp16");

        private final String flag;

        DType(String flag) {
            this.flag = flag;
        }

        /** As the flag spells it. */
        public String flag() {
            return flag;
        }

        /**
         * Parses {@code fp32}, {@code bf16} or {@code fp16} (also {@code float32}, {@code bfloat16},
         * {@code float16}), case-insensitively.
         *
         * @throws InvalidConfigException naming {@code --dtype} for anything else
         */
        public static DType parse(String text) {
            Objects.requireNonNull(text, "text");
            switch (text.trim().toLowerCase(Locale.ROOT)) {
                case "fp32", "float32" -> {
                    return FP32;
                }
                case "bf16", "bfloat16" -> {
                    return BF16;
                }
                case "fp16", "float16", "half" -> {
                    return FP16;
                }
                default -> throw new InvalidConfigException("--dtype", "'" + text
                        + "' is not a dtype; use fp32, bf16 or fp16");
            }
        }

        @Override
        public String toString() {
            return flag;
        }
    }
}
