/**
 * The inference service's own Prometheus metrics (beside the kit's HTTP metrics and Node's process
 * metrics). `get_queue_depth` is the autoscaling signal (KEDA Prometheus trigger); the average batch
 * is `get_batch_size_sum / get_batch_size_count` (Triton's inference_count / exec_count).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../service/metrics.js';

export interface InferenceMetrics {
  /** Images per onnxruntime run. */
  readonly batchSize: Histogram;
  /** Requests waiting in the batcher's queue. */
  readonly queueDepth: Gauge;
  /** Images computed by successful runs (warm-up excluded). */
  readonly imagesGenerated: Counter;
  /** Seconds from start to ready: fetch + sessions + warm-up. */
  readonly modelLoadSeconds: Gauge;
  /** Wall seconds of each onnxruntime run (in its worker thread, including the tensor hand-over). */
  readonly inferenceDuration: Histogram;
  /** 1 for the served model, labelled with its name, version and preset. */
  readonly modelInfo: Gauge<'name' | 'version' | 'preset'>;
}

/** Powers of two up to maxBatchSize, plus maxBatchSize itself. */
export function batchBuckets(maxBatchSize: number): number[] {
  const b: number[] = [];
  for (let v = 1; v < maxBatchSize; v *= 2) b.push(v);
  b.push(maxBatchSize);
  return b;
}

/** Registers the metrics in `registry`. */
export function inferenceMetrics(registry: Registry, maxBatchSize: number): InferenceMetrics {
  const registers = [registry];
  return {
    batchSize: new Histogram({
      name: 'get_batch_size',
      help: 'Images per onnxruntime run (dynamic batching merges requests)',
      buckets: batchBuckets(maxBatchSize),
      registers,
    }),
    queueDepth: new Gauge({ name: 'get_queue_depth', help: 'Requests waiting in the batching queue', registers }),
    imagesGenerated: new Counter({
      name: 'get_images_generated_total',
      help: 'Images computed by onnxruntime runs (warm-up excluded)',
      registers,
    }),
    modelLoadSeconds: new Gauge({
      name: 'get_model_load_seconds',
      help: 'Seconds from start to ready: fetch the model, create the sessions, warm up',
      registers,
    }),
    inferenceDuration: new Histogram({
      name: 'get_inference_duration_seconds',
      help: 'Wall seconds of each onnxruntime run',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    modelInfo: new Gauge({
      name: 'get_model_info',
      help: 'The served model (value 1)',
      labelNames: ['name', 'version', 'preset'],
      registers,
    }),
  };
}
